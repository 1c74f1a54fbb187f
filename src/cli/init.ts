/** `cairn init [DIR]`: writes a starter config and stage programs into DIR and says what to run next. */
import { stdio, type Output } from './context.js';
import { cairnInvocation, shellQuote } from '../install/serviceSetup.js';
import { writeStarter } from '../install/writeStarter.js';

/** Writes the starter files (refusing to replace any) and prints the next commands with this config's absolute path. */
export async function run(dir: string | undefined, io: Output = stdio): Promise<void> {
  const written = writeStarter(dir ?? process.cwd());
  const cairn = cairnInvocation();
  const config = shellQuote(written.configFile);
  const stageNames = written.stageFiles.map((f) => f.slice(f.lastIndexOf('/') + 1)).join(', ');
  io.out(
    [
      `wrote ${written.configFile} (every key at its default; README's "Starter config" explains each)`,
      `  and ${stageNames} in ${written.dir}/stages/ (small working stages: replace each with your own program)`,
      '',
      'Next:',
      `  ${cairn} start --config ${config}`,
      '      runs the daemon in the foreground (Ctrl-C stops it). In another terminal:',
      `  ${cairn} submit --config ${config} "what the task should do"`,
      `  ${cairn} list --config ${config}          the plan runs, then waits for you`,
      `  ${cairn} approve --config ${config} ID    the plan, then again the implementation; review and verify follow`,
      '',
      'As a service (started at boot, restarted after a crash):',
      `  ${cairn} service systemd --config ${config} > cairn.service`,
      `  ${cairn} service pm2 --config ${config} > ecosystem.config.cjs`,
      '      each file begins with the commands that install it.',
    ].join('\n'),
  );
}
