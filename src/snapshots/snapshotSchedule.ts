/**
 * When the heartbeat takes its own snapshots: hourly ones when `snapshots.cron` has fired since the
 * newest automatic snapshot, and one at each daemon start (`snapshots.onStart`).
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { nextTick, previousTick } from '../process/cronTicks.js';
import { toError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { SnapshotRecord } from './catalog.js';
import { locationsOf, sqliteDbOf } from './locations.js';

/** With no automatic snapshot yet, a cron tick this recent makes one due. */
const FIRST_SNAPSHOT_LOOKBACK_MS = 86_400_000;

/**
 * Whether `cron` fired since the newest automatic snapshot (or, with none, within the last day).
 * Pure apart from the cron cache.
 */
export function isSnapshotDue(cron: string, lastAuto: Pick<SnapshotRecord, 'createdAt'> | null, now: number): boolean {
  return previousTick(cron, now, lastAuto ? lastAuto.createdAt : now - FIRST_SNAPSHOT_LOOKBACK_MS) !== null;
}

/** When the next automatic snapshot is due, for `cairn status`. Pure apart from the cron cache. */
export function nextSnapshotAt(cron: string, lastAuto: Pick<SnapshotRecord, 'createdAt'> | null, now: number): number | null {
  return isSnapshotDue(cron, lastAuto, now) ? now : nextTick(cron, now);
}

/**
 * Starts the `startup` snapshot (DESIGN §5: every resume can be undone) and resolves as soon as the
 * moment it copies is fixed, so the daemon resumes and dispatches while the copy is written: a start
 * no longer waits for a copy of the whole database. `done` settles when the snapshot is recorded
 * (null when it was not taken); it logs and never rejects.
 */
export async function beginStartupSnapshot(options: { store: Store; config: Config; logger: Logger; now: number }): Promise<{ done: Promise<SnapshotRecord | null> }> {
  const { config, logger } = options;
  if (!config.snapshots.onStart || !sqliteDbOf(options.store)) return { done: Promise.resolve(null) };
  let release!: () => void;
  const pinned = new Promise<void>((resolve) => (release = resolve));
  const done = (async () => {
    try {
      const { takeSnapshot } = await import('./takeSnapshot.js');
      const snapshot = await takeSnapshot({ ...locationsOf(config), kind: 'startup', now: options.now, durability: config.durability, onPinned: release });
      logger.info(
        { snapshot: snapshot.name, ms: snapshot.ms, sizeBytes: snapshot.sizeBytes, tasks: snapshot.tasks },
        `startup snapshot ${snapshot.name} taken (${snapshot.tasks} tasks, ${snapshot.ms} ms); \`cairn restore ${snapshot.name}\` undoes what this start does`,
      );
      return snapshot;
    } catch (e) {
      logger.error({ err: toError(e) }, `the startup snapshot failed: ${toError(e).message}; starting anyway`);
      return null;
    } finally {
      release(); // failed before its moment was fixed: nothing to wait for
    }
  })();
  await pinned;
  return { done };
}
