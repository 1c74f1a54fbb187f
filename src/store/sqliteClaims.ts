/**
 * How the SQLite store claims stage runs, always inside the caller's write transaction. A session
 * that others marked stale claims nothing; a run is recorded once (INSERT OR IGNORE) before its lease
 * is taken; a stage result claims its task's next run in the same write unless that run is not due
 * yet or a run of a higher-priority task waits for a slot (dispatch order then decides).
 */
import type Database from 'better-sqlite3';
import type { StageName } from '../../machines/task.machine.js';
import { plucked, preparedOnFirstUse } from './preparedOnFirstUse.js';
import { runIdOf, type RunRow, type SessionRow, type TaskRow } from './rows.js';
import { WITH_DEPENDENCIES, type TaskRowWithDependencies } from './sqliteTaskRows.js';
import type { TransitionWrite } from './store.js';

/**
 * What the writes of one batch share while claiming their next runs: whether each session may claim
 * (read once), and the best priority among runs waiting for a slot, due by the batch's latest time
 * (read once, and again after a write of the batch leaves a run of its own waiting).
 */
export interface ClaimRound {
  at: number;
  sessions: Map<string, boolean>;
  waitingRank: number | null | undefined;
}

export function newClaimRound(writes: TransitionWrite[]): ClaimRound {
  let at = 0;
  for (const w of writes) at = Math.max(at, w.at);
  return { at, sessions: new Map(), waitingRank: undefined };
}

/** The row of a run just claimed, as the insert wrote it: no read needed. */
function newRunRow(taskId: number, stage: StageName, attempt: number, runId: string, sessionId: string, at: number): RunRow {
  return { task_id: taskId, stage, attempt, run_id: runId, session_id: sessionId, started_at: at, finished_at: null, outcome: null, exit_code: null, signal: null, pgid: null };
}

export class SqliteClaims {
  private readonly stmt;

  constructor(db: Database.Database) {
    this.stmt = preparedOnFirstUse(db, {
      // The first due run in tasks_runnable's order: the index is scanned from the top, not read whole.
      waitingRank: plucked(`SELECT priority_rank FROM tasks WHERE run_stage IS NOT NULL AND lease_owner IS NULL
                              AND (run_after IS NULL OR run_after <= ?) ORDER BY priority_rank LIMIT 1`),
      claimableTask: `SELECT * FROM tasks WHERE id = ? AND run_stage IS NOT NULL AND lease_owner IS NULL
                          AND (run_after IS NULL OR run_after <= ?)`,
      takeLease: `UPDATE tasks SET lease_owner = ?, lease_expires_at = ?, lease_token = lease_token + 1 WHERE id = ? RETURNING ${WITH_DEPENDENCIES}`,
      // OR IGNORE: a run that already exists is not claimed again, and the claim changes nothing.
      insertRunOnce: `INSERT OR IGNORE INTO stage_runs (task_id, stage, attempt, run_id, session_id, started_at)
                        VALUES (?, ?, ?, ?, ?, ?)`,
      getSession: 'SELECT * FROM sessions WHERE id = ?',
      touchSessionAtLeast: "UPDATE sessions SET last_heartbeat_at = max(last_heartbeat_at, ?) WHERE id = ? AND status = 'active'",
    });
  }

  /**
   * Inserts the run `w.claimFor` asks to claim with the write, when it is due, the session may claim,
   * and no run of a higher-priority task waits for a slot: that one gets the slot through dispatch.
   * The caller's UPDATE of the task row then takes the lease. A run left for dispatch may be one a
   * later write of the round must yield to, so the round's best waiting priority is read again then.
   */
  nextRun(w: TransitionWrite, round: ClaimRound, priorityRank: number): RunRow | null {
    if (!w.nextRun) return null;
    const claimed = this.claimNext(w, round, priorityRank);
    if (!claimed) round.waitingRank = undefined;
    return claimed;
  }

  private claimNext(w: TransitionWrite, round: ClaimRound, priorityRank: number): RunRow | null {
    const next = w.nextRun!;
    if (!w.claimFor || (next.notBefore !== null && next.notBefore > w.at)) return null;
    if (priorityRank > 0) {
      // null, not undefined, when nothing waits: that answer is kept too.
      if (round.waitingRank === undefined) round.waitingRank = (this.stmt.waitingRank.get(round.at) as number | undefined) ?? null;
      if (round.waitingRank !== null && round.waitingRank < priorityRank) return null;
    }
    const sessionId = w.claimFor.sessionId;
    let mayClaim = round.sessions.get(sessionId);
    if (mayClaim === undefined) round.sessions.set(sessionId, (mayClaim = this.mayClaim(sessionId, w.at)));
    if (!mayClaim) return null;
    const runId = runIdOf(w.taskId, next.stage, next.attempt);
    if (this.stmt.insertRunOnce.run(w.taskId, next.stage, next.attempt, runId, sessionId, w.at).changes === 0) return null;
    return newRunRow(w.taskId, next.stage, next.attempt, runId, sessionId, w.at);
  }

  /** Claims each task's waiting run for the session: the run as recorded and the task row with its new lease. */
  waitingRuns(taskIds: number[], sessionId: string, now: number, leaseMs: number): { run: RunRow; task: TaskRowWithDependencies }[] {
    if (!this.mayClaim(sessionId, now)) return [];
    return taskIds.map((id) => this.claimOne(id, sessionId, now, leaseMs)).filter((c) => c !== null);
  }

  /**
   * A session others marked stale (it was frozen) must not take new leases: its tasks are being
   * resumed. A claim is also a sign of life: the session cannot be judged silent before the lease it
   * just took runs out.
   */
  private mayClaim(sessionId: string, now: number): boolean {
    const session = this.stmt.getSession.get(sessionId) as SessionRow | undefined;
    if (session && session.status !== 'active') return false;
    this.stmt.touchSessionAtLeast.run(now, sessionId);
    return true;
  }

  private claimOne(taskId: number, sessionId: string, now: number, leaseMs: number): { run: RunRow; task: TaskRowWithDependencies } | null {
    const row = this.stmt.claimableTask.get(taskId, now) as TaskRow | undefined;
    if (!row || row.run_stage === null || row.run_attempt === null) return null;
    const runId = runIdOf(taskId, row.run_stage, row.run_attempt);
    if (this.stmt.insertRunOnce.run(taskId, row.run_stage, row.run_attempt, runId, sessionId, now).changes === 0) return null;
    const task = this.stmt.takeLease.get(sessionId, now + leaseMs, taskId) as TaskRowWithDependencies;
    return { run: newRunRow(taskId, row.run_stage, row.run_attempt, runId, sessionId, now), task };
  }
}
