/** Takes a snapshot: a consistent copy of the live database into `state/snapshots/`, with its record. */
import { existsSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { crashPoint } from '../process/crashPoints.js';
import { SnapshotError } from '../errors.js';
import type { OnProgress } from '../progressUpdate.js';
import { ensurePrivateDir } from '../store/sqlite.js';
import { assertSnapshotName, timestampedName, writeRecord, type SnapshotKind, type SnapshotRecord } from './catalog.js';
import { copyDatabase } from './copyDatabase.js';

export interface TakeSnapshotOptions {
  dbFile: string;
  snapshotsDir: string;
  /** Also checked for name clashes: a name stays unique once retention has moved its snapshot. */
  archiveDir: string;
  kind: SnapshotKind;
  /** Required for kind `named`; other kinds are named after their kind and time. */
  name?: string;
  now: number;
  /** The config's durability: "normal" skips the fsyncs, as the database itself does. */
  durability?: 'full' | 'normal';
  /** Called once the moment copied is fixed (see copyDatabase). */
  onPinned?: () => void;
  /** Hears the copy's progress (see copyDatabase). */
  onProgress?: OnProgress;
}

/**
 * Copies the database (online backup, while others commit) and writes its record. Creates the
 * snapshots directory (0700); the snapshot and its record are 0600. Throws SnapshotError on a name
 * already taken.
 */
export async function takeSnapshot(options: TakeSnapshotOptions): Promise<SnapshotRecord & { ms: number }> {
  const { snapshotsDir, archiveDir, kind, now } = options;
  ensurePrivateDir(snapshotsDir);
  let name: string;
  if (options.name !== undefined) {
    assertSnapshotName(options.name);
    name = options.name;
    if (isTaken(name, snapshotsDir, archiveDir)) {
      throw new SnapshotError(`a snapshot called "${name}" already exists; pick another name (\`cairn snapshots\` lists the names taken)`);
    }
  } else {
    const base = timestampedName(kind, now);
    name = base;
    for (let i = 2; isTaken(name, snapshotsDir, archiveDir); i++) name = `${base}-${i}`;
  }
  // A NAME.db without its record was left by a snapshot killed before recording it: not a snapshot.
  const leftover = path.join(snapshotsDir, `${name}.db`);
  if (existsSync(leftover)) unlinkSync(leftover);
  const copy = await copyDatabase(options.dbFile, path.join(snapshotsDir, `${name}.db`), options.durability, {
    onPinned: options.onPinned,
    onProgress: options.onProgress,
  });
  const record: SnapshotRecord = {
    name,
    kind,
    createdAt: now,
    sizeBytes: copy.sizeBytes,
    sha256: copy.sha256,
    tasks: copy.tasks,
    schemaVersion: copy.schemaVersion,
    dir: snapshotsDir,
    isArchived: false,
  };
  crashPoint('snapshot-before-record');
  writeRecord(record, options.durability);
  return { ...record, ms: copy.ms };
}

/** A name is taken once its record is written: that is the moment a snapshot exists (and is listed). */
function isTaken(name: string, ...dirs: string[]): boolean {
  return dirs.some((dir) => existsSync(path.join(dir, `${name}.json`)));
}
