/**
 * The invariants checked after every chaos scenario (issue 8), read straight from the database file
 * and the stage ledger, never through cairn's own code paths:
 *   - PRAGMA integrity_check is ok;
 *   - every task is terminal or resumable (a stage run or a human decision is all it waits for);
 *   - at most one recorded completion per (task, stage, attempt), enforced by a UNIQUE index;
 *   - the ledger of executions reconciles with the database: executions >= completions;
 *   - no live (unexpired) lease belongs to a session that is not active.
 */
import Database from 'better-sqlite3';
import { isTerminalState, type TaskState } from '../../machines/taskStates.js';
import { readLedger } from '../helpers/cairnProcess.js';

export interface InvariantReport {
  violations: string[];
  tasks: number;
  /** Stage programs that started (ledger lines). */
  executions: number;
  /** Stage results recorded (STAGE_SUCCEEDED / STAGE_FAILED transitions). */
  completions: number;
  /** executions - completions: stage runs whose result was never recorded (re-executed after a crash). */
  reExecutions: number;
}

const WAITING = new Set(['pending', 'plan_awaiting_approval', 'implementation_awaiting_approval']);

export function checkInvariants(dbFile: string, ledgerFile?: string): InvariantReport {
  const violations: string[] = [];
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const integrity = db.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') violations.push(`integrity_check: ${String(integrity)}`);

    const uniqueIndex = db
      .prepare(`SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'transitions_one_result_per_run'`)
      .pluck()
      .get() as string | undefined;
    if (!uniqueIndex || !/UNIQUE/i.test(uniqueIndex)) violations.push('the UNIQUE index on one result per stage run is missing');

    const tasks = db.prepare('SELECT id, state, run_stage FROM tasks').all() as { id: number; state: TaskState; run_stage: string | null }[];
    for (const t of tasks) {
      if (isTerminalState(t.state) || WAITING.has(t.state) || t.run_stage !== null) continue;
      violations.push(`task ${t.id} is stuck in ${t.state}: not terminal, not waiting, and no stage run to resume`);
    }

    const duplicates = db
      .prepare(`SELECT task_id, stage, attempt, COUNT(*) AS n FROM transitions
                WHERE event_type IN ('STAGE_SUCCEEDED', 'STAGE_FAILED') GROUP BY task_id, stage, attempt HAVING n > 1`)
      .all() as { task_id: number; stage: string; attempt: number; n: number }[];
    for (const d of duplicates) violations.push(`task ${d.task_id} ${d.stage} attempt ${d.attempt}: ${d.n} completions recorded`);

    // Imported results (actor "import:<source>") were produced by the legacy tool, not by a stage program.
    const completions = db
      .prepare(`SELECT COUNT(*) FROM transitions WHERE event_type IN ('STAGE_SUCCEEDED', 'STAGE_FAILED') AND actor NOT LIKE 'import%'`)
      .pluck()
      .get() as number;

    // A lease is live until it expires; one held by a session that ended must have expired with it.
    const staleLeases = db
      .prepare(`SELECT t.id, t.lease_owner, s.status FROM tasks t LEFT JOIN sessions s ON s.id = t.lease_owner
                WHERE t.lease_owner IS NOT NULL AND t.lease_expires_at > ? AND (s.status IS NULL OR s.status != 'active')`)
      .all(Date.now()) as { id: number; lease_owner: string; status: string | null }[];
    for (const l of staleLeases) violations.push(`task ${l.id} holds a live lease of session ${l.lease_owner}, which is ${l.status ?? 'unknown'}`);

    let executions = completions;
    if (ledgerFile) {
      const ledger = readLedger(ledgerFile);
      executions = ledger.length;
      const runIds = new Set(ledger.map((l) => l.runId));
      const recorded = db
        .prepare(`SELECT DISTINCT r.run_id FROM stage_runs r JOIN transitions t
                  ON t.task_id = r.task_id AND t.stage = r.stage AND t.attempt = r.attempt
                  WHERE t.event_type IN ('STAGE_SUCCEEDED', 'STAGE_FAILED') AND t.actor NOT LIKE 'import%'`)
        .pluck()
        .all() as string[];
      for (const runId of recorded) if (!runIds.has(runId)) violations.push(`run ${runId} has a recorded result but never executed`);
      if (executions < completions) violations.push(`ledger shows ${executions} executions but ${completions} completions are recorded`);
    }
    return { violations, tasks: tasks.length, executions, completions, reExecutions: executions - completions };
  } finally {
    db.close();
  }
}
