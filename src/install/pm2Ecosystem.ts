/**
 * The pm2 process file `cairn service pm2` prints: the shipped ecosystem.config.cjs filled in for this
 * install (absolute node, cairn and config; logs in the data directory's logs/; PATH with node's
 * directory first). Every value is written with JSON.stringify, so a path is never JavaScript source.
 */
import { formatJson } from './formatJson.js';
import { configFlags, shellQuote, type ServiceSetup } from './serviceSetup.js';

/** The whole ecosystem file for `setup`. Pure. */
export function renderPm2Ecosystem(setup: ServiceSetup): string {
  const flags = configFlags(setup);
  const args = ['start', ...flags];
  const logs = `${setup.dataDir}/logs`;
  const regenerate = `${setup.cairnCommand} ${['service', 'pm2', ...flags].map(shellQuote).join(' ')}`;
  const startup = ['pm2', 'startup', 'systemd', '-u', setup.user, ...(setup.home ? ['--hp', setup.home] : [])].map(shellQuote).join(' ');
  const app = {
    name: 'cairn',
    cwd: setup.workingDir,
    script: setup.cairnPath,
    args,
    interpreter: setup.nodePath,
    kill_timeout: setup.shutdownGraceMs + 5000,
    treekill: false,
    autorestart: true,
    stop_exit_codes: [2],
    min_uptime: '10s',
    max_restarts: 50,
    exp_backoff_restart_delay: 1000,
    out_file: `${logs}/daemon.out.log`,
    error_file: `${logs}/daemon.err.log`,
    merge_logs: true,
    env: { NODE_ENV: 'production', CAIRN_LOG_FORMAT: 'json', PATH: setup.pathEnv },
  };
  const body = formatJson({ apps: [app] })
    // Why these three are set, in the file where a reader looks for it.
    .replace(/^(\s*)"kill_timeout"/m, '$1// pm2 stops with SIGINT, then SIGKILL after kill_timeout: shutdownGraceMs + the 2 s a stage gets + a margin.\n$1"kill_timeout"')
    .replace(/^(\s*)"treekill"/m, '$1// Stages run in their own process groups and the daemon stops them itself: pm2 signals only the daemon.\n$1"treekill"')
    .replace(/^(\s*)"stop_exit_codes"/m, '$1// Exit 2 is a config or usage error: a restart cannot fix it.\n$1"stop_exit_codes"');
  return [
    `// cairn under pm2, made by \`${regenerate}\``,
    `// for cairn ${setup.cairnVersion} at ${setup.cairnPath}, run by node ${setup.nodeVersion} at ${setup.nodePath}.`,
    '//',
    `// Install it, as ${setup.user}: save this output as ecosystem.config.cjs (\`… > ecosystem.config.cjs\`), then`,
    `//   install -d -m 0700 ${shellQuote(logs)}`,
    '//   (umask 077 && pm2 start ecosystem.config.cjs) && pm2 save',
    `//   ${startup}    (prints the command, to run as root, that starts pm2 and its saved processes at boot)`,
    '// pm2 creates the log files with the umask of its own daemon, started by the first pm2 command:',
    '// the umask above keeps them 0600 when that is this one; `pm2 kill` first if pm2 is already running.',
    `// Logs: pm2 logs cairn, or ${logs}/daemon.*.log    Status: pm2 status`,
    `module.exports = ${body};`,
    '',
  ].join('\n');
}
