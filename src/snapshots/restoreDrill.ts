/**
 * The restore drill (DESIGN §5): "a backup nobody has restored is a hope, not a backup". Once per
 * `snapshots.drillEvery` the heartbeat opens the newest snapshot read-only, checks its sha256 and
 * integrity_check, compares its task count with the count the live database had when the copy was
 * taken, and records the result; a failed drill is a flag in `cairn status`.
 */
import type Database from 'better-sqlite3';
import { listSnapshots } from './catalog.js';
import { verifySnapshot } from './verifySnapshot.js';

export interface DrillResult {
  at: number;
  snapshot: string;
  ok: boolean;
  checks: { sha256: string; integrity: string; tasks: number | null; expected_tasks: number | null };
  message: string;
}

interface DrillRow {
  at: number;
  snapshot: string;
  ok: number;
  checks: string;
  message: string;
}

export function lastDrill(db: Database.Database): DrillResult | null {
  const row = db.prepare('SELECT at, snapshot, ok, checks, message FROM restore_drills ORDER BY id DESC LIMIT 1').get() as DrillRow | undefined;
  return row ? { at: row.at, snapshot: row.snapshot, ok: row.ok === 1, checks: JSON.parse(row.checks), message: row.message } : null;
}

export function isDrillDue(db: Database.Database, now: number, everyMs: number): boolean {
  const last = lastDrill(db);
  return !last || now - last.at >= everyMs;
}

/** Drills the newest snapshot in `snapshotsDir` and records the result in `db`. Reads the snapshot; writes one row. */
export async function runRestoreDrill(db: Database.Database, snapshotsDir: string, now: number): Promise<DrillResult> {
  const newest = listSnapshots(snapshotsDir)[0];
  let result: DrillResult;
  if (!newest) {
    result = {
      at: now,
      snapshot: '',
      ok: false,
      checks: { sha256: 'missing', integrity: 'not checked', tasks: null, expected_tasks: null },
      message: `there is no snapshot in ${snapshotsDir} to drill; take one with \`cairn snapshot\``,
    };
  } else {
    const check = await verifySnapshot(newest);
    result = {
      at: now,
      snapshot: newest.name,
      ok: check.ok,
      checks: { sha256: check.sha256, integrity: check.integrity, tasks: check.tasks, expected_tasks: check.expectedTasks },
      message: check.ok
        ? `snapshot ${newest.name} opens, passes integrity_check and holds the ${check.tasks} task(s) the database had when it was taken`
        : `snapshot ${newest.name} would not restore: ${check.problems.join('; ')}`,
    };
  }
  db.prepare('INSERT INTO restore_drills (at, snapshot, ok, checks, message) VALUES (?, ?, ?, ?, ?)').run(
    result.at,
    result.snapshot,
    result.ok ? 1 : 0,
    JSON.stringify(result.checks),
    result.message,
  );
  return result;
}
