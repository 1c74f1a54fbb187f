/**
 * The rows both stores read (tasks, stage runs, sessions, notes) and their mapping to records. One
 * mapping for both backends: PostgreSQL may return BIGINT columns as strings, so numbers are coerced
 * (a no-op for SQLite). Pure.
 */
import type { StageName, TaskState, TaskStatus } from '../../machines/taskStates.js';
import type { NoteRecord, Priority, SessionRecord, StageRunRecord, TaskRecord } from './store.js';

/** Dispatch order: high before medium before low. */
export const PRIORITY_RANK: Record<Priority, number> = { high: 0, medium: 1, low: 2 };

/** The stage run's id and CAIRN_RUN_ID: "<task>.<stage>.<attempt>" (the PostgreSQL functions build the same). */
export function runIdOf(taskId: number, stage: StageName, attempt: number): string {
  return `${taskId}.${stage}.${attempt}`;
}

export interface TaskRow {
  id: number;
  request: string;
  priority: Priority;
  tags: string;
  state: TaskState;
  status: TaskStatus;
  snapshot: string;
  version: number;
  run_stage: StageName | null;
  run_attempt: number | null;
  run_after: number | null;
  lease_owner: string | null;
  lease_expires_at: number | null;
  lease_token: number;
  created_at: number;
  updated_at: number;
  /** Gathered by the query (PostgreSQL) or read apart and set before mapping (SQLite). */
  depends_on?: number[];
}

export interface RunRow {
  task_id: number;
  stage: StageName;
  attempt: number;
  run_id: string;
  session_id: string;
  started_at: number;
  finished_at: number | null;
  outcome: StageRunRecord['outcome'];
  exit_code: number | null;
  signal: string | null;
  pgid: number | null;
}

export interface SessionRow {
  id: string;
  pid: number;
  host: string;
  started_at: number;
  last_heartbeat_at: number;
  status: SessionRecord['status'];
  ended_at: number | null;
}

export interface NoteRow {
  id: number;
  task_id: number | null;
  scope: string | null;
  kind: NoteRecord['kind'];
  text: string;
  rationale: string | null;
  impact: string | null;
  category: string | null;
  stage: StageName | null;
  attempt: number | null;
  source: NoteRecord['source'];
  actor: string;
  at: number;
}

const num = (value: number | null): number | null => (value === null ? null : Number(value));

/** `row.depends_on` holds the task's dependencies (SQLite reads them apart and sets them first). */
export function toTask(row: TaskRow): TaskRecord {
  const task: TaskRecord = {
    id: Number(row.id),
    request: row.request,
    priority: row.priority,
    tags: JSON.parse(row.tags) as string[],
    dependsOn: (row.depends_on ?? []).map(Number),
    state: row.state,
    status: row.status,
    snapshot: undefined as unknown as TaskRecord['snapshot'],
    version: Number(row.version),
    runStage: row.run_stage,
    runAttempt: num(row.run_attempt),
    runAfter: num(row.run_after),
    lease:
      row.lease_owner === null
        ? null
        : { owner: row.lease_owner, expiresAt: Number(row.lease_expires_at ?? 0), token: Number(row.lease_token) },
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
  // The snapshot is the biggest column and most readers (list, dispatch, status) never look at it:
  // it is parsed on first use, once.
  let snapshot: TaskRecord['snapshot'] | undefined;
  const text = row.snapshot;
  Object.defineProperty(task, 'snapshot', {
    enumerable: true,
    configurable: true,
    get: () => (snapshot ??= (typeof text === 'string' ? JSON.parse(text) : text) as TaskRecord['snapshot']),
    set: (value: TaskRecord['snapshot']) => {
      snapshot = value;
    },
  });
  return task;
}

export function toRun(row: RunRow): StageRunRecord {
  return {
    taskId: Number(row.task_id),
    stage: row.stage,
    attempt: Number(row.attempt),
    runId: row.run_id,
    sessionId: row.session_id,
    startedAt: Number(row.started_at),
    finishedAt: num(row.finished_at),
    outcome: row.outcome,
    exitCode: num(row.exit_code),
    signal: row.signal,
    pgid: num(row.pgid),
  };
}

export function toSession(row: SessionRow): SessionRecord {
  return {
    id: row.id,
    pid: Number(row.pid),
    host: row.host,
    startedAt: Number(row.started_at),
    lastHeartbeatAt: Number(row.last_heartbeat_at),
    status: row.status,
    endedAt: num(row.ended_at),
  };
}

export function toNote(row: NoteRow): NoteRecord {
  return {
    id: Number(row.id),
    taskId: num(row.task_id),
    scope: row.scope,
    kind: row.kind,
    text: row.text,
    rationale: row.rationale,
    impact: row.impact,
    category: row.category,
    stage: row.stage,
    attempt: num(row.attempt),
    source: row.source,
    actor: row.actor,
    at: Number(row.at),
  };
}
