/**
 * Snapshot retention (DESIGN §5): of the automatic snapshots (hourly, startup), keep the newest
 * `keepHourly`, and the newest of each UTC day for the last `keepDaily` days (today is day 1); move
 * the rest to `state/archive/`, or delete them with `archive: false`. The newest snapshot is always
 * kept, whatever the settings, so there is always one to restore and to drill. Manual, named and
 * pre-restore snapshots are the user's and are never touched.
 */
import { existsSync, readdirSync, renameSync, statSync, unlinkSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { ensurePrivateDir } from '../store/sqlite.js';
import { AUTOMATIC_KINDS, listSnapshots, recordFile, snapshotFile, type SnapshotRecord } from './catalog.js';

export interface RetentionPolicy {
  keepHourly: number;
  keepDaily: number;
  archive: boolean;
}

export interface RetentionResult {
  kept: string[];
  archived: string[];
  deleted: string[];
}

const DAY_MS = 86_400_000;
/** A `.partial` copy older than this was left by a crash, not by a copy still running. */
const STALE_PARTIAL_MS = 3_600_000;

/** Which snapshots to keep and which to remove, by name. Pure: depends only on its arguments. */
export function planRetention(
  snapshots: Pick<SnapshotRecord, 'name' | 'kind' | 'createdAt'>[],
  now: number,
  policy: Pick<RetentionPolicy, 'keepHourly' | 'keepDaily'>,
): { keep: string[]; remove: string[] } {
  const automatic = snapshots
    .filter((s) => AUTOMATIC_KINDS.includes(s.kind))
    .sort((a, b) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : -1));
  const keep = new Set<string>(automatic.slice(0, Math.max(1, policy.keepHourly)).map((s) => s.name));
  const today = Math.floor(now / DAY_MS);
  const daysSeen = new Set<number>();
  for (const s of automatic) {
    const day = Math.floor(s.createdAt / DAY_MS);
    if (daysSeen.has(day)) continue;
    daysSeen.add(day);
    // A snapshot from the future (a clock set back) is kept: better one too many than a lost one.
    if (day > today || today - day < policy.keepDaily) keep.add(s.name);
  }
  return { keep: [...keep], remove: automatic.filter((s) => !keep.has(s.name)).map((s) => s.name) };
}

function move(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    copyFileSync(from, to);
    unlinkSync(from);
  }
}

/**
 * Completes what a crash interrupted: a record whose file already went to the archive follows it;
 * a record whose file is gone for good is removed; old `.partial` copies, and old copies whose
 * record was never written (killed between the rename and the record), are removed.
 */
function tidy(snapshotsDir: string, archiveDir: string, now: number): void {
  for (const r of listSnapshots(snapshotsDir)) {
    if (existsSync(snapshotFile(r))) continue;
    if (existsSync(path.join(archiveDir, `${r.name}.db`))) move(recordFile(r), path.join(archiveDir, `${r.name}.json`));
    else unlinkSync(recordFile(r));
  }
  for (const f of readdirSync(snapshotsDir)) {
    const isUnrecorded = f.endsWith('.db') && !existsSync(path.join(snapshotsDir, `${f.slice(0, -'.db'.length)}.json`));
    if (!f.endsWith('.partial') && !isUnrecorded) continue;
    const file = path.join(snapshotsDir, f);
    if (now - statSync(file).mtimeMs > STALE_PARTIAL_MS) unlinkSync(file);
  }
}

/**
 * Applies the policy to `snapshotsDir`: archives (renames into `archiveDir`, 0700) or deletes what it
 * does not keep. The file moves before its record, so an interrupted run leaves nothing half-listed
 * that `tidy` does not finish next time.
 */
export function applyRetention(dirs: { snapshotsDir: string; archiveDir: string }, now: number, policy: RetentionPolicy): RetentionResult {
  const result: RetentionResult = { kept: [], archived: [], deleted: [] };
  if (!existsSync(dirs.snapshotsDir)) return result;
  tidy(dirs.snapshotsDir, dirs.archiveDir, now);
  const snapshots = listSnapshots(dirs.snapshotsDir);
  const { keep, remove } = planRetention(snapshots, now, policy);
  result.kept = keep;
  if (remove.length && policy.archive) ensurePrivateDir(dirs.archiveDir);
  for (const name of remove) {
    const record = snapshots.find((s) => s.name === name)!;
    if (policy.archive) {
      move(snapshotFile(record), path.join(dirs.archiveDir, `${name}.db`));
      move(recordFile(record), path.join(dirs.archiveDir, `${name}.json`));
      result.archived.push(name);
    } else {
      unlinkSync(snapshotFile(record));
      unlinkSync(recordFile(record));
      result.deleted.push(name);
    }
  }
  return result;
}
