/**
 * The snapshot catalog: one record `NAME.json` next to each `NAME.db`. It lives with the files, not in
 * the database, because a restore replaces the database and must not forget the snapshots taken after
 * the one it restored (the pre-restore snapshot among them).
 */
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SnapshotError, UsageError } from '../errors.js';

export const SNAPSHOT_KINDS = ['hourly', 'manual', 'startup', 'pre-restore', 'named'] as const;
export type SnapshotKind = (typeof SNAPSHOT_KINDS)[number];
/** Kinds the heartbeat takes on its own; retention thins only these. The others are the user's to remove. */
export const AUTOMATIC_KINDS: readonly SnapshotKind[] = ['hourly', 'startup'];

export interface SnapshotRecord {
  name: string;
  kind: SnapshotKind;
  createdAt: number;
  sizeBytes: number;
  sha256: string;
  /** Tasks in the live database at the moment the copy was taken (read in the copy's own transaction). */
  tasks: number;
  schemaVersion: number;
  /** The directory holding `NAME.db` and `NAME.json`. */
  dir: string;
  /** Whether retention moved it to the archive directory. */
  isArchived: boolean;
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Throws UsageError unless `name` can be a snapshot's file name. Pure. */
export function assertSnapshotName(name: string): void {
  if (!NAME_PATTERN.test(name) || name.endsWith('.db') || name.endsWith('.json') || name.endsWith('.partial')) {
    throw new UsageError(
      `"${name}" cannot name a snapshot; use letters, digits, ".", "_" and "-" (up to 100, starting with a letter or digit), e.g. before_upgrade`,
    );
  }
}

export function snapshotFile(record: Pick<SnapshotRecord, 'dir' | 'name'>): string {
  return path.join(record.dir, `${record.name}.db`);
}

export function recordFile(record: Pick<SnapshotRecord, 'dir' | 'name'>): string {
  return path.join(record.dir, `${record.name}.json`);
}

/** A name for an unnamed snapshot: its kind and UTC time to the millisecond, e.g. `hourly-2026-11-03T14-00-00.000Z`. Pure. */
export function timestampedName(kind: SnapshotKind, at: number): string {
  return `${kind}-${new Date(at).toISOString().replace(/:/g, '-')}`;
}

/** Writes `NAME.json` atomically (temp file, fsync unless durability is "normal", rename), mode 0600. */
export function writeRecord(record: SnapshotRecord, durability: 'full' | 'normal' = 'full'): void {
  const file = recordFile(record);
  const tmp = `${file}.partial`;
  const body = {
    name: record.name,
    kind: record.kind,
    created_at: new Date(record.createdAt).toISOString(),
    created_at_ms: record.createdAt,
    size_bytes: record.sizeBytes,
    sha256: record.sha256,
    tasks: record.tasks,
    schema_version: record.schemaVersion,
  };
  writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
  if (durability === 'full') {
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  renameSync(tmp, file);
}

function parseRecord(dir: string, file: string, isArchived: boolean): SnapshotRecord | null {
  try {
    const raw = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Record<string, unknown>;
    const name = file.slice(0, -'.json'.length);
    if (raw.name !== name || !SNAPSHOT_KINDS.includes(raw.kind as SnapshotKind)) return null;
    if (typeof raw.created_at_ms !== 'number' || typeof raw.sha256 !== 'string') return null;
    return {
      name,
      kind: raw.kind as SnapshotKind,
      createdAt: raw.created_at_ms,
      sizeBytes: Number(raw.size_bytes),
      sha256: raw.sha256,
      tasks: Number(raw.tasks),
      schemaVersion: Number(raw.schema_version),
      dir,
      isArchived,
    };
  } catch {
    return null; // not a snapshot record (or a half-written one): ignored
  }
}

/** The snapshots recorded in `dir`, newest first. Reads files only. */
export function listSnapshots(dir: string, isArchived = false): SnapshotRecord[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => parseRecord(dir, f, isArchived))
    .filter((r): r is SnapshotRecord => r !== null)
    .sort((a, b) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : -1));
}

/** The snapshot called `name`, kept or archived; throws SnapshotError listing what there is when unknown. */
export function findSnapshot(dirs: { snapshotsDir: string; archiveDir: string }, name: string): SnapshotRecord {
  const found =
    listSnapshots(dirs.snapshotsDir).find((r) => r.name === name) ??
    listSnapshots(dirs.archiveDir, true).find((r) => r.name === name);
  if (found) return found;
  const names = listSnapshots(dirs.snapshotsDir).slice(0, 5).map((r) => r.name);
  throw new SnapshotError(
    `there is no snapshot called "${name}" in ${dirs.snapshotsDir} or ${dirs.archiveDir}; ` +
      (names.length ? `the newest are ${names.join(', ')} (\`cairn snapshots\` lists them all)` : 'none has been taken yet (`cairn snapshot` takes one)'),
  );
}

/** The JSON shape of a snapshot in `cairn snapshot(s) --json`. Pure. */
export function snapshotJson(r: SnapshotRecord) {
  return {
    name: r.name,
    kind: r.kind,
    created_at: new Date(r.createdAt).toISOString(),
    size_bytes: r.sizeBytes,
    sha256: r.sha256,
    tasks: r.tasks,
    schema_version: r.schemaVersion,
    file: snapshotFile(r),
    archived: r.isArchived,
  };
}
