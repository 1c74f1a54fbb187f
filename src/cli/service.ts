/** `cairn service pm2|systemd [--user U]`: prints a pm2 process file or a systemd unit for this install. */
import { ConfigError, UsageError } from '../errors.js';
import { loadCliConfig, stdio, type GlobalOptions, type Output } from './context.js';

export interface ServiceOptions {
  user?: string;
}

const KINDS = ['pm2', 'systemd'] as const;

/** Loads the config (a file is required: a service must not run on defaults by accident) and prints the file. */
export async function run(kind: string, opts: ServiceOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  if (!(KINDS as readonly string[]).includes(kind)) {
    throw new UsageError(`\`cairn service ${kind}\`: the service managers are ${KINDS.join(' and ')}; e.g. \`cairn service systemd > cairn.service\``);
  }
  const config = await loadCliConfig(global);
  if (config.source === null) {
    throw new ConfigError(
      `no config file found (no --config, no CAIRN_CONFIG, no cairn.config.json or .yaml in ${process.cwd()}); ` +
        'a service needs one: run `cairn init` to write a starter config, then `cairn service ' + kind + ' --config DIR/cairn.config.json`',
    );
  }
  const { describeServiceSetup } = await import('../install/serviceSetup.js');
  // A data directory given on this command line or in the environment is not in the config: pass it on.
  const dataDirArg = global.dataDir !== undefined || process.env.CAIRN_DATA_DIR ? config.dataDir : null;
  const setup = describeServiceSetup({ ...config, source: config.source }, { user: opts.user, dataDirArg });
  if (kind === 'systemd') io.out((await import('../install/systemdUnit.js')).renderSystemdUnit(setup));
  else io.out((await import('../install/pm2Ecosystem.js')).renderPm2Ecosystem(setup));
}
