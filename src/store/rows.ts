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

/** `row.depends_on` holds the task's dependencies (PostgreSQL gathers them in the query). */
export function toTask(row: TaskRow): TaskRecord {
  return toTaskWith(row, row.depends_on);
}

/**
 * A task as read from a row, or as a write left it. The snapshot is the biggest column and most
 * readers (list, dispatch, status) never look at it, so a row's is parsed on first use. A class, not a
 * closure per record: closures made reading 50 tasks cost more in garbage collection than parsing their
 * snapshots. The snapshot is an accessor on the prototype, so toJSON puts it back for JSON output.
 * Both factories assign the fields in the same order, so every record has one shape.
 */
class StoredTask implements TaskRecord {
  id!: number;
  request!: string;
  priority!: Priority;
  tags!: string[];
  dependsOn!: number[];
  state!: TaskState;
  status!: TaskStatus;
  version!: number;
  runStage!: StageName | null;
  runAttempt!: number | null;
  runAfter!: number | null;
  lease!: TaskRecord['lease'];
  createdAt!: number;
  updatedAt!: number;
  #snapshotText = '';
  #snapshot: TaskRecord['snapshot'] | undefined;

  private constructor() {}

  static fromRow(row: TaskRow, dependsOn: number[] | undefined): StoredTask {
    const t = new StoredTask();
    t.id = Number(row.id);
    t.request = row.request;
    t.priority = row.priority;
    t.tags = row.tags === '[]' ? [] : (JSON.parse(row.tags) as string[]);
    t.dependsOn = dependsOn ? dependsOn.map(Number) : [];
    t.state = row.state;
    t.status = row.status;
    t.version = Number(row.version);
    t.runStage = row.run_stage;
    t.runAttempt = num(row.run_attempt);
    t.runAfter = num(row.run_after);
    t.lease =
      row.lease_owner === null
        ? null
        : { owner: row.lease_owner, expiresAt: Number(row.lease_expires_at ?? 0), token: Number(row.lease_token) };
    t.createdAt = Number(row.created_at);
    t.updatedAt = Number(row.updated_at);
    t.#snapshotText = row.snapshot;
    return t;
  }

  static fromValues(v: Omit<TaskRecord, 'snapshot'>, snapshot: TaskRecord['snapshot']): StoredTask {
    const t = new StoredTask();
    t.id = v.id;
    t.request = v.request;
    t.priority = v.priority;
    t.tags = v.tags;
    t.dependsOn = v.dependsOn;
    t.state = v.state;
    t.status = v.status;
    t.version = v.version;
    t.runStage = v.runStage;
    t.runAttempt = v.runAttempt;
    t.runAfter = v.runAfter;
    t.lease = v.lease;
    t.createdAt = v.createdAt;
    t.updatedAt = v.updatedAt;
    t.#snapshot = snapshot;
    return t;
  }

  get snapshot(): TaskRecord['snapshot'] {
    return (this.#snapshot ??= JSON.parse(this.#snapshotText) as TaskRecord['snapshot']);
  }

  set snapshot(value: TaskRecord['snapshot']) {
    this.#snapshot = value;
  }

  toJSON(): TaskRecord {
    return { ...this, snapshot: this.snapshot };
  }
}

/** toTask with the dependencies read apart (SQLite), without copying the row to add them. */
export function toTaskWith(row: TaskRow, dependsOn: number[] | undefined): TaskRecord {
  return StoredTask.fromRow(row, dependsOn);
}

/** The record a write left, built from its values and the snapshot it wrote, without reading the row back. */
export function taskFromValues(values: Omit<TaskRecord, 'snapshot'>, snapshot: TaskRecord['snapshot']): TaskRecord {
  return StoredTask.fromValues(values, snapshot);
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
