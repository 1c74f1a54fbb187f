/** `cairn start`: the daemon in the foreground, as pm2 and systemd run it. */
import { UsageError } from '../errors.js';
import { loadCliConfig, parsePositiveInt, type GlobalOptions } from './context.js';
import { assertStagesConfigured, createDaemon, runUntilStopped } from './daemonProcess.js';
import type { ResumePolicy } from '../daemon/daemon.js';
import { tightenDataDirLogs, tightenProcessManagerLogs } from '../daemon/privateServiceLogs.js';

export interface StartOptions {
  resume?: boolean | string;
  concurrency?: string;
}

export function parseResume(value: boolean | string | undefined): ResumePolicy | undefined {
  if (value === undefined) return undefined;
  if (value === true) return 'all';
  if (value === false) return 'none';
  const ids = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!ids.length || ids.some((s) => !/^\d+$/.test(s))) {
    throw new UsageError(`--resume=${value} must be a comma-separated list of task ids, e.g. --resume=12,15`);
  }
  return ids.map(Number);
}

export async function run(opts: StartOptions, global: GlobalOptions): Promise<number> {
  // Before anything can fail: pm2 writes this start's errors into files it made world-readable.
  const logWarnings = tightenProcessManagerLogs(process.env);
  const resume = parseResume(opts.resume);
  const concurrency = opts.concurrency === undefined ? undefined : parsePositiveInt(opts.concurrency, '--concurrency');
  const config = await loadCliConfig(global, { concurrency });
  assertStagesConfigured(config);
  const { openStore } = await import('../store/openStore.js');
  const store = await openStore(config, { verify: true });
  logWarnings.push(...tightenDataDirLogs(config.dataDir));
  const daemon = await createDaemon({ store, config, resume });
  for (const warning of logWarnings) daemon.logger.warn(warning);
  const stopped = runUntilStopped(daemon);
  try {
    await daemon.start();
  } catch (e) {
    await store.close();
    throw e;
  }
  const code = await stopped;
  await store.close();
  // Anything still holding the event loop (a stuck stage pipe) must not keep a stopped daemon alive.
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}
