/**
 * Runs a daemon in this process until it is told to stop: the shared core of `cairn start` and
 * `cairn run`. First SIGINT/SIGTERM drains gracefully; a second forces the exit.
 */
import type { Logger } from 'pino';
import { STAGES } from '../../machines/taskStates.js';
import type { Config } from '../config.js';
import { ConfigError } from '../errors.js';
import type { Daemon, DaemonOptions } from '../daemon/daemon.js';

/** Refuses to start with a stage nobody configured: better now than when the first task reaches it. */
export function assertStagesConfigured(config: Config): void {
  const missing = STAGES.filter((s) => !('run' in config.stages[s]) && !('module' in config.stages[s]));
  if (missing.length) {
    throw new ConfigError(
      `no program is configured for stage${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ` +
        `(${config.source ?? 'no config file found; looked for cairn.config.json or .yaml in this directory'}). ` +
        'Give each stage {"run": [argv…]} or {"module": "file.mjs"}; examples/cairn.config.json is a working example.',
    );
  }
}

/** `logTo`: 1 for `cairn start` (DESIGN: logs on stdout), 2 where stdout carries a result (`cairn run`). */
export async function createDaemon(options: Omit<DaemonOptions, 'logger'> & { logger?: Logger; logTo?: 1 | 2 }): Promise<Daemon> {
  const { Daemon } = await import('../daemon/daemon.js');
  const { createLogger } = await import('../daemon/logger.js');
  const { ViewsService } = await import('../views/viewsService.js');
  const { InboxService } = await import('../inbox/inboxService.js');
  // `cairn run` drives one task: it leaves the inbox to the daemon.
  const services = [...(options.services ?? []), new ViewsService(), ...(options.onlyTaskIds ? [] : [new InboxService()])];
  return new Daemon({
    ...options,
    pollMs: options.pollMs ?? pollMsFromEnv(),
    services,
    logger: options.logger ?? createLogger({ destination: options.logTo ?? 1 }),
  });
}

/**
 * CAIRN_POLL_MS: the safety poll's interval. Not a config key (DESIGN has none): writes are announced,
 * so the poll only matters where they are not; tests set it to 60 s to prove the announcement works.
 */
function pollMsFromEnv(): number | undefined {
  const value = process.env.CAIRN_POLL_MS;
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) {
    throw new ConfigError(`CAIRN_POLL_MS is "${value}"; it needs a whole number of milliseconds (1 or more), or unset it for the default`);
  }
  return Number(value);
}

/** Installs the signal handlers; resolves once the daemon has stopped after a signal or `until` resolves. */
export function runUntilStopped(daemon: Daemon, until?: Promise<unknown>): Promise<number> {
  return new Promise<number>((resolve) => {
    let isStopping = false;
    const stop = async (reason: string) => {
      if (isStopping) return;
      isStopping = true;
      if (reason !== 'done') daemon.logger.info({ reason }, `received ${reason}; stopping`);
      try {
        await daemon.stop();
        resolve(0);
      } catch (e) {
        daemon.logger.error({ err: e }, 'stopping failed');
        resolve(1);
      }
    };
    const onSignal = (signal: NodeJS.Signals) => {
      if (isStopping) {
        daemon.logger.warn(`second ${signal}: exiting now; running stages are left resumable`);
        process.exit(1);
      }
      void stop(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    until?.then(() => stop('done'));
  });
}
