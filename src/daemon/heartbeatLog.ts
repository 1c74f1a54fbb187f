/**
 * The heartbeat's records in the SQLite database: one row per cycle with the outcome of each part (so
 * `cairn status` can report a failing part), and short named locks so that two processes (two
 * daemons, or a daemon and `cairn heartbeat`) never take the same snapshot or archive the same tasks.
 */
import type Database from 'better-sqlite3';

export interface PartOutcome {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
  /** Why the part did nothing this cycle (not due, not configured, another process holds the upkeep). */
  skipped?: string;
  detail?: Record<string, unknown>;
}

export interface HealthFlag {
  kind: string;
  message: string;
  task?: number;
  session?: string;
}

export interface HeartbeatRow {
  id: number;
  sessionId: string | null;
  startedAt: number;
  finishedAt: number;
  ok: boolean;
  cycleRan: boolean;
  parts: PartOutcome[];
  flags: HealthFlag[];
}

/** Heartbeat rows older than this are pruned: the table answers "how is it now", not "how was it in May". */
const KEEP_HEARTBEATS_MS = 7 * 86_400_000;

interface Row {
  id: number;
  session_id: string | null;
  started_at: number;
  finished_at: number;
  ok: number;
  cycle_ran: number;
  parts: string;
  flags: string;
}

const toRow = (r: Row): HeartbeatRow => ({
  id: r.id,
  sessionId: r.session_id,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  ok: r.ok === 1,
  cycleRan: r.cycle_ran === 1,
  parts: JSON.parse(r.parts),
  flags: JSON.parse(r.flags),
});

/** Inserts a cycle's row and prunes old ones, in one write transaction. */
export function recordHeartbeat(db: Database.Database, row: Omit<HeartbeatRow, 'id'>): void {
  db.transaction(() => {
    db.prepare(
      `INSERT INTO heartbeats (session_id, started_at, finished_at, ok, cycle_ran, parts, flags) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(row.sessionId, row.startedAt, row.finishedAt, row.ok ? 1 : 0, row.cycleRan ? 1 : 0, JSON.stringify(row.parts), JSON.stringify(row.flags));
    db.prepare('DELETE FROM heartbeats WHERE started_at < ?').run(row.startedAt - KEEP_HEARTBEATS_MS);
  }).immediate();
}

export function latestHeartbeat(db: Database.Database): HeartbeatRow | null {
  const row = db.prepare('SELECT * FROM heartbeats ORDER BY id DESC LIMIT 1').get() as Row | undefined;
  return row ? toRow(row) : null;
}

/** The newest cycle in which `part` failed, if it is newer than the newest in which it succeeded. */
export function unresolvedFailures(db: Database.Database, since: number): { part: string; at: number; error: string }[] {
  const rows = (db.prepare('SELECT * FROM heartbeats WHERE started_at >= ? ORDER BY id DESC LIMIT 500').all(since) as Row[]).map(toRow);
  const settled = new Set<string>();
  const failures: { part: string; at: number; error: string }[] = [];
  for (const row of rows) {
    for (const part of row.parts) {
      if (settled.has(part.name) || part.skipped) continue;
      settled.add(part.name);
      if (!part.ok) failures.push({ part: part.name, at: row.startedAt, error: part.error ?? 'failed' });
    }
  }
  return failures;
}

/** Heartbeat cycles since the last one that ran the `cycle` command (all of them if it never ran). */
export function cyclesSinceCycleRan(db: Database.Database): number {
  return db
    .prepare('SELECT count(*) FROM heartbeats WHERE id > coalesce((SELECT max(id) FROM heartbeats WHERE cycle_ran = 1), 0)')
    .pluck()
    .get() as number;
}

/** Takes the lock `name` for `ttlMs` unless someone else holds it unexpired. Returns whether we hold it now. */
export function tryLock(db: Database.Database, name: string, owner: string, now: number, ttlMs: number): boolean {
  return db.transaction(() => {
    const held = db.prepare('SELECT owner, expires_at FROM maintenance_locks WHERE name = ?').get(name) as
      | { owner: string; expires_at: number }
      | undefined;
    if (held && held.owner !== owner && held.expires_at > now) return false;
    db.prepare('INSERT INTO maintenance_locks (name, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at').run(
      name,
      owner,
      now + ttlMs,
    );
    return true;
  }).immediate();
}

export function lockHolder(db: Database.Database, name: string): string | null {
  return (db.prepare('SELECT owner FROM maintenance_locks WHERE name = ?').pluck().get(name) as string | undefined) ?? null;
}

export function unlock(db: Database.Database, name: string, owner: string): void {
  db.prepare('DELETE FROM maintenance_locks WHERE name = ? AND owner = ?').run(name, owner);
}
