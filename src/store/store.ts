/**
 * The store interface: everything the engine, daemon and CLI persist, named for intent. Each backend
 * (`sqlite.ts`, later `postgres.ts`) implements all of it; the engine never sees SQL. Methods are async
 * so a networked backend drops in, even though better-sqlite3 answers synchronously.
 */
import type Database from 'better-sqlite3';
import type pg from 'pg';
import type { CheckpointName, StageName, TaskState, TaskStatus } from '../../machines/taskStates.js';
import type { PostgresTarget } from './postgresConnection.js';

export type Priority = 'high' | 'medium' | 'low';
export const PRIORITIES: readonly Priority[] = ['high', 'medium', 'low'];

/** The machine snapshot as stored: enough for `taskMachine.resolveState`. */
export interface PersistedSnapshot {
  value: TaskState;
  context: import('../../machines/task.machine.js').TaskContext;
}

export interface Lease {
  owner: string;
  expiresAt: number;
  token: number;
}

export interface TaskRecord {
  id: number;
  request: string;
  priority: Priority;
  tags: string[];
  dependsOn: number[];
  state: TaskState;
  status: TaskStatus;
  snapshot: PersistedSnapshot;
  version: number;
  /** The stage run the state asks for next, set by the machine's runStage effect. */
  runStage: StageName | null;
  runAttempt: number | null;
  runAfter: number | null;
  /** Set while a session runs the stage; `null` otherwise. A lease whose owner is gone marks the task resumable. */
  lease: Lease | null;
  createdAt: number;
  updatedAt: number;
}

export interface TransitionRecord {
  seq: number;
  from: TaskState | null;
  to: TaskState;
  event: { type: string; [key: string]: unknown };
  actor: string;
  at: number;
}

export interface CheckpointRecord {
  name: CheckpointName;
  seq: number;
  state: TaskState;
  snapshot: PersistedSnapshot;
  at: number;
}

export type RunOutcome = 'succeeded' | 'failed' | 'superseded' | 'interrupted';

export interface StageRunRecord {
  taskId: number;
  stage: StageName;
  attempt: number;
  runId: string;
  sessionId: string;
  startedAt: number;
  finishedAt: number | null;
  outcome: RunOutcome | null;
  exitCode: number | null;
  signal: string | null;
  pgid: number | null;
}

export interface SessionRecord {
  id: string;
  pid: number;
  host: string;
  startedAt: number;
  lastHeartbeatAt: number;
  status: 'active' | 'stopped' | 'crashed' | 'stale';
  endedAt: number | null;
}

export type NoteKind = 'decision' | 'insight';

export interface NoteRecord {
  id: number;
  taskId: number | null;
  scope: string | null;
  kind: NoteKind;
  text: string;
  rationale: string | null;
  impact: string | null;
  category: string | null;
  stage: StageName | null;
  attempt: number | null;
  source: 'cli' | 'stage' | 'import';
  actor: string;
  at: number;
}

export type NewNote = Omit<NoteRecord, 'id'>;

export interface NewTask {
  request: string;
  priority: Priority;
  tags: string[];
  dependsOn: number[];
  actor: string;
  at: number;
  /** The machine's initial snapshot and the checkpoints its initial transition names. */
  snapshot: PersistedSnapshot;
  checkpoints: CheckpointName[];
  /** Stored as the first transition's event, so replay can rebuild the initial snapshot. */
  submitEvent: { type: 'SUBMIT'; [key: string]: unknown };
  /** Dependencies on tasks created earlier in the same `createTasksOnce` batch, by their index there. */
  dependsOnBatch?: number[];
}

/**
 * A task brought in with a history of its own (an import): every row as it should be stored. The
 * history must replay through the machine to `snapshot`; the importer builds it that way.
 */
export interface ImportedTask {
  request: string;
  priority: Priority;
  tags: string[];
  dependsOn: number[];
  transitions: Omit<TransitionRecord, 'seq'>[];
  checkpoints: (Omit<CheckpointRecord, 'seq'> & { transitionIndex: number })[];
  runs: { stage: StageName; attempt: number; startedAt: number; finishedAt: number | null; outcome: RunOutcome | null; exitCode: number | null }[];
  state: TaskState;
  status: TaskStatus;
  snapshot: PersistedSnapshot;
  nextRun: { stage: StageName; attempt: number; notBefore: number | null } | null;
  /** For a stage that was running when the old tool stopped: the (ended) session it belongs to. */
  lease: { owner: string; expiresAt: number } | null;
  createdAt: number;
  updatedAt: number;
}

/** Something taken in once (an inbox file by content hash, an imported item): its tasks are created at most once. */
export interface IntakeKey {
  source: string;
  key: string;
}

/** One machine transition to commit atomically: transition row + task row + checkpoint rows. */
export interface TransitionWrite {
  taskId: number;
  /** Optimistic concurrency: the write applies only if the task is still at this version. */
  expectedVersion: number;
  /**
   * The record the write was computed from. A store may copy from it what no transition changes
   * (request, priority, tags, dependencies, creation time) into the record it returns, instead of
   * reading the row back.
   */
  before: TaskRecord;
  from: TaskState;
  to: TaskState;
  status: TaskStatus;
  event: { type: string; [key: string]: unknown };
  actor: string;
  at: number;
  snapshot: PersistedSnapshot;
  checkpoints: CheckpointName[];
  /** The run the machine asked for (runStage effect), or null when no stage should run now. */
  nextRun: { stage: StageName; attempt: number; notBefore: number | null } | null;
  /** Decisions and insights a stage's output carried, recorded in the same transaction. */
  notes?: NewNote[];
  /** A stage result: recorded only if the run is still the lease holder's and not yet completed. */
  completion?: {
    stage: StageName;
    attempt: number;
    outcome: 'succeeded' | 'failed';
    exitCode: number | null;
    signal: string | null;
    leaseToken: number;
  };
  /**
   * Claim the run `nextRun` asks for in the same write, for this session: the daemon whose stage just
   * finished runs the next one without a dispatch round. Only a run due now is claimed, and only by a
   * session that is still active. A store may ignore it; the run is then claimed by dispatch.
   */
  claimFor?: { sessionId: string; leaseMs: number };
}

export type CommitResult =
  | { ok: true; task: TaskRecord; seq: number; claimed?: ClaimedRun }
  | { ok: false; reason: 'conflict' | 'fenced' | 'duplicate' | 'missing'; message: string };

export interface TaskFilter {
  status?: TaskStatus;
  state?: TaskState;
  tag?: string;
  limit?: number;
  ids?: number[];
}

export interface ClaimedRun {
  task: TaskRecord;
  run: StageRunRecord;
  lease: Lease;
}

/**
 * The connection behind a store, for the parts that keep their own tables in the same database (key-value
 * state, the heartbeat's locks, snapshots): they share it rather than open a second one. Told apart by
 * `kind`, so no caller probes a store's shape or casts it to a backend's class.
 */
export type StoreConnection =
  | { kind: 'sqlite'; db: Database.Database; file: string }
  | { kind: 'postgres'; pool: pg.Pool; target: PostgresTarget };

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Human-readable location, for messages (a file path or a redacted URL). */
  readonly location: string;
  /** The connection (SQLite) or pool (PostgreSQL) this store uses; closing the store closes it. No side effects. */
  connection(): StoreConnection;

  createTask(task: NewTask): Promise<TaskRecord>;
  /**
   * Creates the tasks of one intake item in one transaction, unless that item was taken in before:
   * then nothing is written and the earlier tasks are returned with `isNew: false`.
   */
  createTasksOnce(intake: IntakeKey, tasks: NewTask[], notes?: (ids: number[]) => NewNote[]): Promise<{ tasks: TaskRecord[]; isNew: boolean }>;
  /** Inserts an imported task with its whole history in one transaction, at most once per intake key. */
  importTask(intake: IntakeKey, task: ImportedTask, notes?: (id: number) => NewNote[]): Promise<{ task: TaskRecord; isNew: boolean }>;
  /** Records a session that is not this process (an imported one, already ended). */
  recordEndedSession(session: { id: string; pid: number; host: string; startedAt: number; lastHeartbeatAt: number; status: 'stopped' | 'crashed' }): Promise<void>;
  /** The tasks an intake item created, or null if it was never taken in. */
  findIntake(intake: IntakeKey): Promise<number[] | null>;
  addNotes(notes: NewNote[]): Promise<NoteRecord[]>;
  listNotes(filter: { taskId?: number; scope?: string }): Promise<NoteRecord[]>;
  getTask(id: number): Promise<TaskRecord | null>;
  listTasks(filter?: TaskFilter): Promise<TaskRecord[]>;
  getHistory(taskId: number): Promise<TransitionRecord[]>;
  getCheckpoints(taskId: number): Promise<CheckpointRecord[]>;
  getStageRuns(taskId: number): Promise<StageRunRecord[]>;
  /** Every task's runs that have started and not ended (no outcome), by task. */
  listOpenRuns(): Promise<StageRunRecord[]>;
  countByStatus(): Promise<Record<string, number>>;

  /** Commits the writes in one transaction; each is checked on its own (version, fencing) and reported. */
  commitTransitions(writes: TransitionWrite[]): Promise<CommitResult[]>;

  /** Pending tasks whose dependencies completed, highest priority then oldest first. */
  findDispatchable(limit: number): Promise<TaskRecord[]>;
  /** Tasks in a stage state whose next run is due, unleased and not yet started. */
  findRunnable(now: number, limit: number): Promise<TaskRecord[]>;
  /** Tasks whose stage run was started by a session that is gone or whose lease expired. */
  findResumable(now: number): Promise<TaskRecord[]>;
  /**
   * Takes the lease on a runnable task's next run and records the run as started, atomically.
   * Returns null if another session got there first or the task is no longer runnable.
   */
  claimRun(taskId: number, sessionId: string, now: number, leaseMs: number): Promise<ClaimedRun | null>;
  /** claimRun for several tasks in one transaction; a task that cannot be claimed is left out. */
  claimRuns(taskIds: number[], sessionId: string, now: number, leaseMs: number): Promise<ClaimedRun[]>;
  /** Records the process group of a started command stage, so a successor can end it. */
  recordRunProcess(taskId: number, stage: StageName, attempt: number, pgid: number): Promise<void>;

  createSession(session: { id: string; pid: number; host: string; at: number }): Promise<SessionRecord>;
  /** Renews the session and the leases it holds. */
  heartbeatSession(id: string, now: number, leaseMs: number): Promise<void>;
  endSession(id: string, status: 'stopped' | 'crashed' | 'stale', at: number): Promise<void>;
  listSessions(filter?: { status?: SessionRecord['status'] }): Promise<SessionRecord[]>;

  /** A number that changes whenever another connection commits: lets a daemon notice CLI writes cheaply. */
  changeMarker(): Promise<number>;
  /**
   * Calls `onChange` soon after another process commits (SQLite: a CLI write rings the doorbell,
   * ./doorbell.ts; PostgreSQL: the schema's NOTIFY), so a daemon need not wait for its next poll. A hint
   * only: a change may go unheard (the daemon keeps a slow poll), and a call may come with no change.
   * `onError` hears a watch that failed. Resolves with a function that stops watching.
   */
  watchChanges?(onChange: () => void, onError: (e: unknown) => void): Promise<() => void>;

  /** SQLite: WAL checkpoints move to a background thread for as long as the store is open (the daemon). */
  checkpointInBackground?(onError: (message: string) => void): void;
  close(): Promise<void>;
}
