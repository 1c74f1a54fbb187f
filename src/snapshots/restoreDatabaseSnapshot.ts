/**
 * `cairn restore`: puts a snapshot's content back as the live database. Refused while a daemon runs on
 * the data directory; the snapshot is verified (sha256, integrity_check, schema) before anything
 * changes; the live database is first saved as a `pre-restore` snapshot, so the restore can be undone.
 * The content goes back through the online backup API into the live file (not a file rename), so a
 * CLI process that has the database open sees either the old content or the new, never a mix.
 */
import Database from '../store/betterSqlite3.js';
import { existsSync, renameSync } from 'node:fs';
import type { Config } from '../config.js';
import { SnapshotError } from '../errors.js';
import { isDamage } from '../store/damage.js';
import { isSessionGone } from '../process/sessions.js';
import { prefixSteps, type OnProgress } from '../progressUpdate.js';
import { openSqliteStore } from '../store/sqlite.js';
import { snapshotFile, type SnapshotRecord } from './catalog.js';
import { locationsOf } from './locations.js';
import { takeSnapshot } from './takeSnapshot.js';
import { verifySnapshot, type SnapshotCheck } from './verifySnapshot.js';

/** Pages per backup step of the copy back: the driver's default, which this copy used before it reported progress. */
const RESTORE_PAGES_PER_STEP = 100;

export interface RestoreReport {
  restored: SnapshotRecord;
  /** The live database as it was; null when it was too damaged to copy (see `setAside`). */
  preRestore: SnapshotRecord | null;
  /** A damaged live database's files, renamed aside instead of snapshotted. */
  setAside: string[];
  check: SnapshotCheck;
  tasks: number;
}

/** Throws SnapshotError naming the daemon when a live session (pid alive here, or heartbeat fresh) uses the database. */
export async function assertNoLiveDaemon(config: Config, now: number, doing: string): Promise<void> {
  const store = openSqliteStore(locationsOf(config).dbFile, { durability: config.durability });
  try {
    const live = (await store.listSessions({ status: 'active' })).filter((s) => !isSessionGone(s, now, config.heartbeat.staleAfter));
    if (live.length) {
      const s = live[0];
      throw new SnapshotError(
        `a daemon is running on ${config.dataDir} (session ${s.id}, pid ${s.pid} on ${s.host}, last heartbeat ${new Date(s.lastHeartbeatAt).toISOString()}); ` +
          `${doing} would pull the data from under it. Stop it first (SIGTERM, \`pm2 stop cairn\` or \`systemctl stop cairn\`), then run this again.`,
      );
    }
  } finally {
    await store.close();
  }
}

/**
 * Restores `record` over the live database; `onProgress` hears the check, the pre-restore snapshot and
 * the copy. Writes the pre-restore snapshot and the live database.
 */
export async function restoreDatabaseSnapshot(config: Config, record: SnapshotRecord, now: number, onProgress?: OnProgress): Promise<RestoreReport> {
  const locations = locationsOf(config);
  let isLiveDamaged = false;
  try {
    await assertNoLiveDaemon(config, now, 'a restore');
  } catch (e) {
    // A database too damaged to open cannot tell us about daemons, and no daemon can run on it either.
    if (!isDamage(e)) throw e;
    isLiveDamaged = true;
  }
  const check = await verifySnapshot(record, prefixSteps(`checking ${record.name}`, onProgress));
  if (!check.ok) {
    throw new SnapshotError(
      `snapshot ${record.name} failed its checks, so nothing was restored: ${check.problems.join('; ')}. ` +
        'Pick another one (`cairn snapshots` lists them).',
    );
  }
  let preRestore: SnapshotRecord | null = null;
  const setAside: string[] = [];
  if (!isLiveDamaged) {
    try {
      preRestore = await takeSnapshot({ ...locations, kind: 'pre-restore', now, onProgress: prefixSteps('pre-restore snapshot', onProgress) });
    } catch (e) {
      if (!isDamage(e)) throw e;
      isLiveDamaged = true;
    }
  }
  if (isLiveDamaged) {
    // Kept for inspection under a new name; its -wal and -shm go too, or SQLite would lay them over the restored file.
    const stamp = new Date(now).toISOString().replace(/[:.]/g, '-');
    for (const suffix of ['', '-wal', '-shm']) {
      const from = `${locations.dbFile}${suffix}`;
      if (!existsSync(from)) continue;
      const to = `${locations.dbFile}.damaged-${stamp}${suffix}`;
      renameSync(from, to);
      setAside.push(to);
    }
  }
  const undo = preRestore ? `the database as it was is in snapshot ${preRestore.name} (\`cairn restore ${preRestore.name}\`)` : `the damaged files are ${setAside.join(', ')}`;
  const source = new Database(snapshotFile(record), { readonly: true, fileMustExist: true });
  try {
    let pages = 0; // the driver reports before each step, not after the last
    await source.backup(locations.dbFile, {
      progress: ({ totalPages, remainingPages }) => {
        pages = totalPages;
        onProgress?.({ step: `restoring ${record.name}`, done: totalPages - remainingPages, total: totalPages, unit: 'pages' });
        return RESTORE_PAGES_PER_STEP;
      },
    });
    onProgress?.({ step: `restoring ${record.name}`, done: pages, total: pages, unit: 'pages' });
  } catch (e) {
    throw new SnapshotError(
      `copying snapshot ${record.name} into ${locations.dbFile} failed (${(e as Error).message}); ` +
        undo,
      { cause: e },
    );
  } finally {
    source.close();
  }
  // Opening through the store applies the migrations an older snapshot lacks and sets WAL again.
  const store = openSqliteStore(locations.dbFile, { durability: config.durability });
  try {
    const integrity = store.db.pragma('integrity_check', { simple: true });
    const tasks = store.db.prepare('SELECT count(*) FROM tasks').pluck().get() as number;
    if (integrity !== 'ok' || tasks !== check.tasks) {
      throw new SnapshotError(
        `after restoring ${record.name}, ${locations.dbFile} does not match it (integrity_check: ${integrity}, ${tasks} task(s) instead of ${check.tasks}); ` +
          (preRestore ? `put the previous database back with \`cairn restore ${preRestore.name}\`` : `the damaged files are ${setAside.join(', ')}`),
      );
    }
    return { restored: record, preRestore, setAside, check, tasks };
  } finally {
    await store.close();
  }
}
