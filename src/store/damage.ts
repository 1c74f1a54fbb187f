/**
 * Damaged SQLite files: telling them apart from other failures, checking the -wal before a daemon
 * starts on it, and the message every verb shows, which names the file and the newest snapshot that
 * passes its checks (`cairn restore NAME`). The snapshot modules load only on that error path.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { StoreError } from '../errors.js';

const DAMAGE_CODES = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_CORRUPT_INDEX', 'SQLITE_CORRUPT_SEQUENCE', 'SQLITE_CORRUPT_VTAB', 'SQLITE_IOERR_SHORT_READ']);

/** A StoreError for a file found damaged by a check of our own (not an SQLite error code). */
export class DamagedFileError extends StoreError {}

/** Whether `e` (or an error it wraps) says the database file is damaged. */
export function isDamage(e: unknown): boolean {
  for (let err = e as { code?: unknown; cause?: unknown } | undefined, depth = 0; err && depth < 5; err = err.cause as typeof err, depth++) {
    if (err instanceof DamagedFileError) return true;
    if (typeof err.code === 'string' && DAMAGE_CODES.has(err.code)) return true;
  }
  return false;
}

const WAL_MAGIC = [0x377f0682, 0x377f0683];
const WAL_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;

/**
 * The -wal's size when it ends on a whole frame (or is empty/absent), else null; reads 32 bytes.
 * Size and header come from one open descriptor: another process's last connection may delete or
 * empty the -wal at any moment, and a file that went away between two looks is not damage.
 */
function wholeWalSize(walFile: string): { size: number; problem: string | null } {
  let fd: number;
  try {
    fd = openSync(walFile, 'r');
  } catch {
    return { size: 0, problem: null }; // absent (or unreadable: opening the database reports that)
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return { size, problem: null };
    if (size < WAL_HEADER_BYTES) return { size, problem: `it is ${size} bytes, shorter than a WAL header` };
    const header = Buffer.alloc(WAL_HEADER_BYTES);
    // Fewer bytes than the size promised: a checkpoint emptied it meanwhile, which is as good as empty.
    if (readSync(fd, header, 0, WAL_HEADER_BYTES, 0) < WAL_HEADER_BYTES) return { size: 0, problem: null };
    if (!WAL_MAGIC.includes(header.readUInt32BE(0))) return { size, problem: 'its header is not a WAL header' };
    const frame = header.readUInt32BE(8) + FRAME_HEADER_BYTES;
    const tail = (size - WAL_HEADER_BYTES) % frame;
    return { size, problem: tail === 0 ? null : `it ends ${tail} bytes into a frame (truncated)` };
  } finally {
    closeSync(fd);
  }
}

/** Bytes 18 and 19 of the database header: 2 and 2 in WAL mode, 1 and 1 in rollback-journal mode. */
function isRollbackModeFile(dbFile: string): boolean {
  const header = Buffer.alloc(20);
  let read = 0;
  try {
    const fd = openSync(dbFile, 'r');
    try {
      read = readSync(fd, header, 0, 20, 0);
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
  return read === 20 && header[18] === 1 && header[19] === 1;
}

/**
 * Throws DamagedFileError when `dbFile`'s -wal cannot be trusted: cut short (SQLite would silently drop
 * the committed transactions in the cut frame and after it), or left beside a file that is not the one
 * it belongs to (a snapshot or stopped-daemon copy put back by hand is in rollback-journal mode; SQLite
 * would lay the old -wal's pages over it). A writer appending right now can show a partial frame for
 * a moment, so a cut that stays the same size after a short wait is the one reported.
 */
export async function assertWalUsable(dbFile: string): Promise<void> {
  const walFile = `${dbFile}-wal`;
  const first = wholeWalSize(walFile);
  if (first.size > 0 && isRollbackModeFile(dbFile)) {
    throw new DamagedFileError(
      `${walFile} does not belong to ${dbFile}: the database file is in rollback-journal mode, as a snapshot or a copy put back by hand is, ` +
        'so this -wal is left from the database it replaced and would overwrite parts of it',
    );
  }
  if (!first.problem) return;
  await new Promise((r) => setTimeout(r, 200));
  const again = wholeWalSize(walFile);
  if (again.problem && again.size === first.size) {
    throw new DamagedFileError(`${walFile} is damaged: ${again.problem}; the transactions it held may be lost`);
  }
}

/** Where to find snapshots, and how the newest good one is named; loaded on the error path only. */
async function newestGoodSnapshot(snapshotsDir: string): Promise<string | null> {
  const { listSnapshots } = await import('../snapshots/catalog.js');
  const { verifySnapshot } = await import('../snapshots/verifySnapshot.js');
  for (const record of listSnapshots(snapshotsDir).slice(0, 10)) {
    if ((await verifySnapshot(record)).ok) return record.name;
  }
  return null;
}

/** The innermost error of a cause chain: SQLite's own words, not a wrapper's. */
function rootCause(e: unknown): unknown {
  let err = e as { cause?: unknown };
  for (let depth = 0; err?.cause && depth < 5; depth++) err = err.cause as typeof err;
  return err;
}

/** Whether `file` starts as a SQLite database does; one that does not is foreign, not damaged (sqlite.ts says so). */
export function hasSqliteMagic(file: string): boolean {
  const magic = Buffer.from('SQLite format 3\0', 'latin1');
  const head = Buffer.alloc(magic.length);
  try {
    const fd = openSync(file, 'r');
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
  return head.equals(magic);
}

/** The error every verb shows for a damaged database: the file, what is wrong, and the restore to run. */
export async function damagedDatabaseError(dbFile: string, cause: unknown, snapshotsDir: string): Promise<StoreError> {
  const detail = (cause instanceof DamagedFileError ? cause.message : (rootCause(cause) as Error)?.message) ?? String(cause);
  const good = await newestGoodSnapshot(snapshotsDir).catch(() => null);
  const what = detail.includes(dbFile) ? detail : `${dbFile} is damaged (${detail})`;
  const advice = good
    ? `cairn will not use it. Restore the newest good snapshot with \`cairn restore ${good}\`.`
    : `cairn will not use it, and ${snapshotsDir} holds no snapshot that passes its checks: restore a backup (\`cairn backup\` copies) over it, with the daemon stopped.`;
  return new DamagedFileError(`${what}; ${advice}`, { cause });
}
