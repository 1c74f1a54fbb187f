/**
 * `cairn backup` for a PostgreSQL store: runs pg_dump (custom format, restorable with pg_restore).
 * The connection URL is handed over in PG* environment variables, never in argv, so its password does
 * not show in `ps`.
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { SnapshotError } from '../errors.js';
import type { OnProgress } from '../progressUpdate.js';
import { sha256OfFile } from './copyDatabase.js';

/** libpq URL query parameters and the environment variables pg_dump reads them from. */
const QUERY_ENV: Record<string, string> = {
  host: 'PGHOST',
  port: 'PGPORT',
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  application_name: 'PGAPPNAME',
  options: 'PGOPTIONS',
};

/** `postgres://user:pw@host:5432/db?sslmode=require` → PGUSER, PGPASSWORD, PGHOST, PGPORT, PGDATABASE, PGSSLMODE. Pure. */
export function pgEnvironment(url: string): Record<string, string> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SnapshotError('store.url is not a postgres:// URL pg_dump can use');
  }
  const env: Record<string, string> = {};
  if (parsed.hostname) env.PGHOST = decodeURIComponent(parsed.hostname);
  if (parsed.port) env.PGPORT = parsed.port;
  if (parsed.username) env.PGUSER = decodeURIComponent(parsed.username);
  if (parsed.password) env.PGPASSWORD = decodeURIComponent(parsed.password);
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (database) env.PGDATABASE = database;
  for (const [key, value] of parsed.searchParams) if (QUERY_ENV[key]) env[QUERY_ENV[key]] = value;
  return env;
}

/**
 * Dumps this installation's schema to `dest` (0600). Spawns pg_dump; throws SnapshotError when it is
 * missing or fails. `onProgress` hears the dump's size as it grows (read every 200 ms), then the hashing.
 */
export async function pgDump(
  store: { url: string; schema?: string },
  dest: string,
  onProgress?: OnProgress,
): Promise<{ file: string; sizeBytes: number; sha256: string }> {
  if (existsSync(dest)) throw new SnapshotError(`${dest} already exists; cairn will not overwrite it`);
  const partial = `${dest}.partial`;
  if (existsSync(partial)) unlinkSync(partial);
  // Created 0600 first: pg_dump truncates and fills it, keeping the mode.
  closeSync(openSync(partial, 'wx', 0o600));
  const env = pgEnvironment(store.url);
  // Only this installation's schema: several may share one database (store.schema wins over ?schema=).
  const schema = store.schema ?? new URL(store.url).searchParams.get('schema') ?? 'public';
  const args = ['--format=custom', '--no-password', `--file=${partial}`, `--schema=${schema}`];
  await new Promise<void>((resolve, reject) => {
    const child = spawn('pg_dump', args, {
      shell: false,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
    });
    // pg_dump writes the file itself: its size is all there is to show.
    const watch = onProgress && setInterval(() => onProgress({ step: 'pg_dump writing', done: statSync(partial, { throwIfNoEntry: false })?.size ?? 0, unit: 'bytes' }), 200);
    const stopWatching = () => clearInterval(watch);
    child.on('close', stopWatching).on('error', stopWatching);
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err = (err + chunk).slice(-4000)));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'ENOENT'
          ? new SnapshotError(
              'pg_dump is not on PATH, so cairn cannot back up the PostgreSQL database; install the PostgreSQL client tools ' +
                '(e.g. `apt-get install postgresql-client`) or run `pg_dump --format=custom` yourself',
            )
          : new SnapshotError(`cannot run pg_dump: ${e.message}`),
      ),
    );
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new SnapshotError(`pg_dump ${signal ? `was killed by ${signal}` : `exited with code ${code}`}: ${err.trim() || 'no message'}`));
    });
  }).catch((e) => {
    if (existsSync(partial)) unlinkSync(partial);
    throw e;
  });
  if (statSync(partial).size === 0) {
    unlinkSync(partial);
    throw new SnapshotError(`pg_dump exited 0 but wrote nothing to ${partial}`);
  }
  chmodSync(partial, 0o600);
  renameSync(partial, dest);
  return { file: dest, sizeBytes: statSync(dest).size, sha256: await sha256OfFile(dest, onProgress) };
}
