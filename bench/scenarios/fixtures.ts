/**
 * Large databases for the read, resume and memory scenarios, written straight into cairn's schema in
 * big transactions (going through the engine would take minutes). Each row copies a snapshot that a
 * real task produced, so the engine can load and advance every one of them.
 */
import { openCairn } from '../../src/index.js';
import { thisHost } from '../../src/process/sessions.js';
import type Database from 'better-sqlite3';
import type { PersistedSnapshot, Store } from '../../src/store/store.js';

/** Drives one real task to `implementing` and returns its stored snapshot. */
export async function realSnapshot(dataDir: string): Promise<PersistedSnapshot> {
  const cairn = await openCairn({ dataDir, config: { approvals: { plan: 'auto', implementation: 'auto' }, views: false } });
  const task = await cairn.submit({ request: 'template' });
  await cairn.engine.start(task.id, 'bench');
  const claim = await cairn.store.claimRun(task.id, 'bench', Date.now(), 60_000);
  await cairn.engine.recordStageResult(
    task.id,
    { type: 'STAGE_SUCCEEDED', stage: 'plan', attempt: 1, output: { steps: ['a', 'b', 'c'] }, at: Date.now() },
    'bench',
    claim!.lease.token,
  );
  const snapshot = (await cairn.get(task.id)).snapshot;
  await cairn.stop();
  return snapshot;
}

const STATUSES = [
  ['completed', 'completed'],
  ['completed', 'completed'],
  ['completed', 'completed'],
  ['failed', 'failed'],
  ['cancelled', 'cancelled'],
  ['plan_awaiting_approval', 'awaiting_approval'],
  ['pending', 'pending'],
] as const;

/** The SQLite connection of a bench's store, which these fixtures write straight into. */
export function sqliteDbOf(store: Store): Database.Database {
  const connection = store.connection();
  if (connection.kind !== 'sqlite') throw new Error(`this bench scenario fills a SQLite store, and ${store.location} is PostgreSQL; run it without store.kind "postgres"`);
  return connection.db;
}

/** Fills the store with `tasks` finished-looking tasks and `transitionsPerTask` history rows each. */
export function fillHistory(store: Store, snapshot: PersistedSnapshot, tasks: number, transitionsPerTask: number): void {
  const db = sqliteDbOf(store);
  const insertTask = db.prepare(`INSERT INTO tasks (request, priority, priority_rank, tags, state, status, snapshot, version, created_at, updated_at)
                                 VALUES (?, 'medium', 1, '[]', ?, ?, ?, ?, ?, ?)`);
  const insertTransition = db.prepare(`INSERT INTO transitions (task_id, seq, from_state, to_state, event_type, stage, attempt, event, actor, at)
                                       VALUES (?, ?, 'planning', 'planning', 'RESUME', NULL, NULL, '{"type":"RESUME","at":0}', 'bench', ?)`);
  // Each row's snapshot is in the row's own state, so the engine could advance any of them.
  const texts = new Map(STATUSES.map(([state]) => [state, JSON.stringify({ ...snapshot, value: state })]));
  const now = Date.now();
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const [state, status] = STATUSES[i % STATUSES.length];
      const id = Number(insertTask.run(`task number ${i}: do the thing it says`, state, status, texts.get(state), transitionsPerTask, now - i, now - i).lastInsertRowid);
      for (let seq = 1; seq <= transitionsPerTask; seq++) insertTransition.run(id, seq, now - i);
    }
  });
  for (let from = 0; from < tasks; from += 5000) batch.immediate(from, Math.min(tasks, from + 5000));
  // The database as it would be after a year of use, not mid bulk-load: the load's WAL is folded into
  // the file now, so the background checkpointer is not still copying it while reads are timed.
  db.pragma('wal_checkpoint(TRUNCATE)');
}

/**
 * Adds `count` tasks interrupted mid-implement by a session of this host that crashed (each with its
 * open run): the usual restart after a crash, where each open run is checked for processes left running.
 */
export function fillInterrupted(store: Store, snapshot: PersistedSnapshot, count: number): void {
  const db = sqliteDbOf(store);
  const now = Date.now();
  db.prepare(`INSERT INTO sessions (id, pid, host, started_at, last_heartbeat_at, status, ended_at) VALUES ('crashed-bench', 1, ?, ?, ?, 'crashed', ?)`).run(thisHost, now, now, now);
  const insertTask = db.prepare(`INSERT INTO tasks (request, priority, priority_rank, tags, state, status, snapshot, version, run_stage, run_attempt,
                                   lease_owner, lease_expires_at, lease_token, created_at, updated_at)
                                 VALUES (?, 'medium', 1, '[]', 'implementing', 'in_progress', ?, 3, 'implement', 1, 'crashed-bench', ?, 1, ?, ?)`);
  const insertSubmit = db.prepare(`INSERT INTO transitions (task_id, seq, from_state, to_state, event_type, event, actor, at) VALUES (?, 1, NULL, 'pending', 'SUBMIT', '{}', 'bench', ?)`);
  const insertRun = db.prepare(`INSERT INTO stage_runs (task_id, stage, attempt, run_id, session_id, started_at) VALUES (?, 'implement', 1, ?, 'crashed-bench', ?)`);
  const text = JSON.stringify(snapshot);
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const id = Number(insertTask.run(`interrupted ${i}`, text, now + 600_000, now, now).lastInsertRowid);
      insertSubmit.run(id, now);
      insertRun.run(id, `${id}.implement.1`, now);
    }
  }).immediate();
}
