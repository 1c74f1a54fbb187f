/**
 * A consistent copy of the live database through SQLite's online backup API, taken while other
 * processes keep committing. The copy reads through its own connection inside one read transaction:
 * in WAL mode that pins one committed moment for the whole copy (writers carry on; the backup never
 * restarts because nothing changes under it), and the task count read in the same transaction is the
 * live database's count at exactly the moment copied. The store's own connection is left alone, so
 * the daemon keeps committing through it while a copy runs.
 */
import Database from '../store/betterSqlite3.js';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { crashPoint } from '../process/crashPoints.js';
import { SnapshotError, toError } from '../errors.js';
import type { OnProgress } from '../progressUpdate.js';

const BUSY_TIMEOUT_MS = 15_000;
/**
 * Pages per backup step (4 MiB). Each step is synchronous and the next waits for a turn of the event
 * loop, so a daemon copying its database keeps recording stage results: copied in one step, a 159 MB
 * database stalled the loop for 575 ms, every hour. The copy reads inside one read transaction, so
 * commits between steps never make it start over.
 */
const PAGES_PER_STEP = 1024;
/** The copy's own page cache, in KiB as a negative cache_size says it. */
const SOURCE_CACHE_KIB = -1024;

export interface CopiedDatabase {
  file: string;
  sizeBytes: number;
  sha256: string;
  tasks: number;
  schemaVersion: number;
  ms: number;
}

/** Read size for hashing: one buffer, reused, so hashing a large database leaves no garbage behind. */
const HASH_CHUNK_BYTES = 1024 * 1024;

/** The sha256 of a file; `onProgress` hears the bytes read. Reads the file. */
export async function sha256OfFile(file: string, onProgress?: OnProgress): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(HASH_CHUNK_BYTES);
    const total = onProgress ? (await handle.stat()).size : 0;
    for (let done = 0; ; ) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      done += bytesRead;
      onProgress?.({ step: 'hashing', done, total, unit: 'bytes' });
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/** fsyncs a file or directory, so a rename or a copy survives a power cut. */
export function fsyncPath(p: string): void {
  const fd = openSync(p, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies `liveFile` to `destFile` (which must not exist): backup into `destFile.partial`, switch the
 * copy to a self-contained rollback journal (no -wal/-shm needed to open it read-only), fsync, mode
 * 0600, then rename into place. The destination directory must exist. Returns the copy's checksum
 * and the live task count at the copied moment. `durability` follows the config: with "normal" (the
 * database itself survives process crashes, not power loss) cairn adds no fsync of its own (the
 * driver's backup still syncs the copy once as it finishes: it opens the destination itself, with
 * SQLite's default synchronous; on a 159 MB copy that last step is about 150 ms of the 236 ms stall).
 * `onPinned` is called once the moment copied is fixed: nothing committed after it is in the copy.
 * `onProgress` hears the pages copied, then the bytes hashed.
 */
export async function copyDatabase(
  liveFile: string,
  destFile: string,
  durability: 'full' | 'normal' = 'full',
  options: { onPinned?: () => void; onProgress?: OnProgress } = {},
): Promise<CopiedDatabase> {
  const started = performance.now();
  if (!existsSync(liveFile)) throw new SnapshotError(`there is no database at ${liveFile} to copy`);
  if (existsSync(destFile)) throw new SnapshotError(`${destFile} already exists; cairn will not overwrite it`);
  if (!existsSync(path.dirname(destFile))) throw new SnapshotError(`the directory ${path.dirname(destFile)} does not exist`);
  const partial = `${destFile}.partial`;
  if (existsSync(partial)) unlinkSync(partial); // left by a copy that crashed
  // Created 0600 before SQLite writes a byte into it: the directory may be one anybody can read.
  closeSync(openSync(partial, 'wx', 0o600));
  let tasks: number;
  let schemaVersion: number;
  const source = new Database(liveFile, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
  try {
    // The copy reads each page once: a cache of the driver's default 16 MiB would only add to the
    // daemon's memory while it runs beside the daemon's work.
    source.pragma(`cache_size = ${SOURCE_CACHE_KIB}`);
    source.exec('BEGIN');
    // The first read starts the read transaction the backup then copies from.
    tasks = source.prepare('SELECT count(*) FROM tasks').pluck().get() as number;
    schemaVersion = (source.prepare('SELECT coalesce(max(version), 0) FROM schema_migrations').pluck().get() as number) ?? 0;
    // From here on the copy is of this moment, whatever anyone commits while it runs.
    options.onPinned?.();
    // The driver reports before each step, so the last report is of the step before the last.
    let pages = 0;
    await source.backup(partial, {
      progress: ({ totalPages, remainingPages }) => {
        pages = totalPages;
        options.onProgress?.({ step: 'copying', done: totalPages - remainingPages, total: totalPages, unit: 'pages' });
        return PAGES_PER_STEP;
      },
    });
    options.onProgress?.({ step: 'copying', done: pages, total: pages, unit: 'pages' });
    source.exec('COMMIT');
  } catch (e) {
    if (existsSync(partial)) unlinkSync(partial);
    throw new SnapshotError(`copying ${liveFile} failed: ${toError(e).message}`, { cause: e });
  } finally {
    source.close();
  }
  try {
    const copy = new Database(partial);
    try {
      // One fsync below covers this rewrite of the header.
      copy.pragma('synchronous = OFF');
      copy.pragma('journal_mode = DELETE');
    } finally {
      copy.close();
    }
    if (durability === 'full') fsyncPath(partial);
    const sha256 = await sha256OfFile(partial, options.onProgress);
    const sizeBytes = statSync(partial).size;
    crashPoint('snapshot-before-rename');
    renameSync(partial, destFile);
    if (durability === 'full') fsyncPath(path.dirname(destFile));
    return { file: destFile, sizeBytes, sha256, tasks, schemaVersion, ms: Math.round(performance.now() - started) };
  } catch (e) {
    if (existsSync(partial)) unlinkSync(partial);
    throw new SnapshotError(`finishing the copy ${destFile} failed: ${toError(e).message}`, { cause: e });
  }
}
