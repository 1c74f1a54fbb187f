/**
 * Makes the files a process manager writes the daemon's output to private (0600, their directory in
 * the data directory 0700). pm2 opens them itself, in its God daemon, with that daemon's umask: 0644
 * files in a 0755 directory it creates, readable by every user, though they hold requests, outputs and
 * errors. cairn cannot choose how pm2 creates them, but pm2 appends to the files it has and names them
 * in the environment of the process it starts (`pm_out_log_path`, `pm_err_log_path`, `pm_log_path`),
 * so the daemon tightens them each time it starts. A file pm2 rotates or recreates is tightened at the
 * next start.
 */
import { chmodSync, lstatSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { toError } from '../errors.js';

const PM2_LOG_VARIABLES = ['pm_out_log_path', 'pm_err_log_path', 'pm_log_path'] as const;

/** chmods `file` to 0600 (a directory: 0700) if it is a regular file (directory); returns a warning when it could not. */
function tighten(file: string, kind: 'file' | 'directory', what: string): string | null {
  const mode = kind === 'file' ? 0o600 : 0o700;
  try {
    const stat = lstatSync(file);
    // Never /dev/null (pm2's way to drop a log), a symlink's target, or a task's log directory as a file.
    if (!(kind === 'file' ? stat.isFile() : stat.isDirectory()) || (stat.mode & 0o777) === mode) return null;
    chmodSync(file, mode);
    return null;
  } catch (e) {
    const err = toError(e);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return `could not make ${what} ${file} private (mode ${mode.toString(8)}): ${err.message}; chmod it yourself, or run cairn as the user that owns it`;
  }
}

/**
 * chmods the log files pm2 named in `env` to 0600. Runs before the config is read, since a config
 * error's message lands in them too. Returns warnings for the files it could not change.
 */
export function tightenProcessManagerLogs(env: NodeJS.ProcessEnv): string[] {
  const files = new Set(PM2_LOG_VARIABLES.map((name) => env[name]).filter((file): file is string => !!file));
  return [...files].map((file) => tighten(file, 'file', "pm2's log file")).filter((w): w is string => w !== null);
}

/**
 * chmods `dataDir`/logs to 0700 and the files directly in it (where the shipped ecosystem file has
 * pm2 write) to 0600; stage logs below it are created private already. Returns warnings.
 */
export function tightenDataDirLogs(dataDir: string): string[] {
  const logsDir = path.resolve(dataDir, 'logs');
  const warnings = [tighten(logsDir, 'directory', 'the log directory')];
  let names: string[] = [];
  try {
    if (lstatSync(logsDir).isDirectory()) names = readdirSync(logsDir);
  } catch {
    // No logs directory yet (or the data directory is unusable, which opening the store reports).
  }
  for (const name of names) warnings.push(tighten(path.join(logsDir, name), 'file', 'the log file'));
  return warnings.filter((w): w is string => w !== null);
}
