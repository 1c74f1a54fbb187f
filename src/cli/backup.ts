/**
 * `cairn backup [PATH]`: a consistent copy of the database somewhere else (an export; snapshots are
 * the ones retention manages). SQLite: the online backup API. PostgreSQL: pg_dump.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { loadCliConfig, stdio, type GlobalOptions, type Output } from './context.js';
import { progressLine } from './progress.js';
import { formatBytes } from './snapshots.js';

/** The file to write: PATH itself, a stamped file inside PATH when it is a directory, or one in state/backups/. */
function destination(target: string | undefined, backupsDir: string, ext: string): string {
  const stamped = `cairn-${new Date().toISOString().replace(/:/g, '-')}${ext}`;
  if (target === undefined) return path.join(backupsDir, stamped);
  const resolved = path.resolve(target);
  if (existsSync(resolved) && statSync(resolved).isDirectory()) return path.join(resolved, stamped);
  return resolved;
}

export async function run(target: string | undefined, opts: { json?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const config = await loadCliConfig(global);
  const { locationsOf } = await import('../snapshots/locations.js');
  const { ensurePrivateDir } = await import('../store/sqlite.js');
  const locations = locationsOf(config);
  const dest = destination(target, locations.backupsDir, config.store.kind === 'sqlite' ? '.db' : '.dump');
  if (target === undefined) ensurePrivateDir(locations.backupsDir);
  // A directory the user named is theirs: created private if missing, left as it is otherwise.
  else mkdirSync(path.dirname(dest), { recursive: true, mode: 0o700 });
  let result: { file: string; sizeBytes: number; sha256: string; tasks?: number; ms?: number };
  const progress = progressLine('backup');
  if (config.store.kind === 'postgres') {
    const { pgDump } = await import('../snapshots/pgDump.js');
    result = await pgDump(config.store, dest, progress.update).finally(() => progress.end());
  } else {
    const { copyDatabase } = await import('../snapshots/copyDatabase.js');
    result = await copyDatabase(locations.dbFile, dest, 'full', { onProgress: progress.update }).finally(() => progress.end());
  }
  if (opts.json) {
    return io.out(JSON.stringify({ file: result.file, size_bytes: result.sizeBytes, sha256: result.sha256, tasks: result.tasks ?? null, format: config.store.kind === 'postgres' ? 'pg_dump' : 'sqlite' }));
  }
  io.out(result.file);
  io.err(`backup written: ${result.file} (${formatBytes(result.sizeBytes)}, sha256 ${result.sha256})`);
}
