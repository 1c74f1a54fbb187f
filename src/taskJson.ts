/**
 * The public JSON shapes of a task: what `cairn list`, `show`, `history` and `note` print with `--json`
 * (DESIGN §6), what `migrate-store` hashes to prove a copy equal, and what an HTTP API will serve. They
 * sit below the CLI and the store so every caller prints the same bytes. Pure.
 */
import { STAGES, STAGE_OUTPUT_KEY } from '../machines/taskStates.js';
import { stageLogPath } from './executors/stageLogPath.js';
import type { CheckpointRecord, NoteRecord, StageRunRecord, TaskRecord, TransitionRecord } from './store/store.js';

/** Epoch milliseconds as an ISO 8601 string; null stays null. */
export const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

/** One task as `list --json` prints it. */
export function taskSummaryJson(task: TaskRecord) {
  return {
    id: task.id,
    request: task.request,
    state: task.state,
    status: task.status,
    priority: task.priority,
    tags: task.tags,
    created_at: iso(task.createdAt),
    updated_at: iso(task.updatedAt),
  };
}

/** One note as `note --json` and `show --json` print it. */
export function noteJson(n: NoteRecord) {
  return {
    kind: n.kind,
    text: n.text,
    rationale: n.rationale,
    impact: n.impact,
    category: n.category,
    stage: n.stage,
    attempt: n.attempt,
    source: n.source,
    by: n.actor,
    at: iso(n.at),
  };
}

/** One task as `show --json` prints it. `logsDir` (stageLogsDir of the data directory) fills each run's `log` path; without it `log` is null. */
export function taskDetailJson(task: TaskRecord, checkpoints: CheckpointRecord[], runs: StageRunRecord[], notes: NoteRecord[] = [], logsDir?: string) {
  const context = task.snapshot.context;
  const outputs = Object.fromEntries(STAGES.map((s) => [STAGE_OUTPUT_KEY[s], context.outputs[STAGE_OUTPUT_KEY[s]] ?? null]));
  return {
    ...taskSummaryJson(task),
    depends_on: task.dependsOn,
    outputs,
    approvals: context.approvals.map((a) => ({ gate: a.gate, decision: a.decision, by: a.by, at: iso(a.at), comment: a.comment })),
    checkpoints: checkpoints.map((c) => ({ name: c.name, at: iso(c.at) })),
    notes: notes.map(noteJson),
    error_details: context.error ? { ...context.error, at: iso(context.error.at) } : null,
    attempts: context.attempts,
    feedback: context.feedback.map((f) => ({ ...f, at: iso(f.at) })),
    lease: task.lease ? { owner: task.lease.owner, expires_at: iso(task.lease.expiresAt), token: task.lease.token } : null,
    next_run: task.runStage ? { stage: task.runStage, attempt: task.runAttempt, not_before: iso(task.runAfter) } : null,
    runs: runs.map((r) => ({
      stage: r.stage,
      attempt: r.attempt,
      run_id: r.runId,
      session: r.sessionId,
      started_at: iso(r.startedAt),
      finished_at: iso(r.finishedAt),
      outcome: r.outcome,
      exit_code: r.exitCode,
      signal: r.signal,
      log: logsDir === undefined ? null : stageLogPath(logsDir, task.id, r.stage, r.attempt),
    })),
  };
}

/** A task's transitions as `history --json` prints them, oldest first. */
export function historyJson(history: TransitionRecord[]) {
  return history.map((h) => ({ seq: h.seq, from: h.from, to: h.to, event: h.event, actor: h.actor, at: iso(h.at) }));
}
