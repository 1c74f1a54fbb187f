/**
 * The SQLite store on better-sqlite3: WAL, `synchronous` set explicitly from `durability` on every
 * connection (this build defaults WAL databases to NORMAL), a busy timeout, and every multi-statement
 * write in a `BEGIN IMMEDIATE` transaction so a second writer waits instead of failing with SQLITE_BUSY.
 */
import Database from './betterSqlite3.js';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import type { StageName, TaskState } from '../../machines/task.machine.js';
import { crashBeforeCommit, isArmedAtCommit } from '../process/crashPoints.js';
import { StoreError, StoreUnavailableError, toError } from '../errors.js';
import { directoryError } from './directoryError.js';
import { applyMigrations } from './migrate.js';
import { plucked, preparedOnFirstUse } from './preparedOnFirstUse.js';
import { WalSizeGuard } from './walSizeGuard.js';
import { PRIORITY_RANK, runIdOf, toNote, toRun, toSession, type NoteRow, type RunRow, type SessionRow } from './rows.js';
import { newClaimRound, SqliteClaims, type ClaimRound } from './sqliteClaims.js';
import { taskFromRow, tasksFromRows, withDependencies, WITH_DEPENDENCIES, type TaskRowWithDependencies } from './sqliteTaskRows.js';
import { SqliteTaskUpdate } from './sqliteTaskUpdate.js';
import { WalCheckpointer } from './walCheckpointer.js';
import type {
  CheckpointRecord,
  ClaimedRun,
  CommitResult,
  ImportedTask,
  IntakeKey,
  NewNote,
  NewTask,
  NoteRecord,
  SessionRecord,
  StageRunRecord,
  Store,
  StoreConnection,
  TaskFilter,
  TaskRecord,
  TransitionRecord,
  TransitionWrite,
} from './store.js';

const BUSY_TIMEOUT_MS = 15_000;

export interface SqliteStoreOptions {
  durability?: 'full' | 'normal';
}

/**
 * Creates `dir` (0700) if needed and tightens it if it exists; the data can be private. A file in the
 * way or a directory of another user is a StoreError naming `what` ("the data directory").
 */
export function ensurePrivateDir(dir: string, what = 'the directory'): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } catch (e) {
    throw directoryError(what, dir, e);
  }
}

/** Creates `file` empty with mode 0600 if it does not exist, and tightens it if it does. */
export function ensurePrivateFile(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
  chmodSync(file, 0o600);
}

function describeOpenFailure(file: string, error: Error): StoreError {
  const code = (error as { code?: string }).code ?? '';
  if (code === 'SQLITE_NOTADB') {
    return new StoreError(
      `${file} is not a SQLite database (or its header is damaged); cairn will not touch it. ` +
        'Move it aside, or point --data-dir at another directory, then start again.',
      { cause: error },
    );
  }
  if (code === 'SQLITE_CORRUPT') {
    return new StoreError(`${file} is damaged (${error.message}); restore it from a snapshot or backup.`, { cause: error });
  }
  if (code === 'SQLITE_CANTOPEN' || code === 'EACCES' || code === 'SQLITE_READONLY') {
    return new StoreError(`cannot open ${file} for writing (${error.message}); check its owner and permissions.`, {
      cause: error,
    });
  }
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') {
    return new StoreError(`the disk holding ${file} is full; free some space and try again.`, { cause: error });
  }
  return new StoreError(`cannot open ${file}: ${error.message}`, { cause: error });
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * Throws StoreError for an existing file that does not start with SQLite's header. Returns whether
 * the file holds a database (false: missing or empty, a database we are about to create).
 */
function refuseNonSqliteFile(file: string): boolean {
  let header: Buffer;
  try {
    const fd = openSync(file, 'r');
    try {
      header = Buffer.alloc(SQLITE_HEADER.length);
      const read = readSync(fd, header, 0, header.length, 0);
      if (read === 0) return false;
      header = header.subarray(0, read);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw describeOpenFailure(file, toError(e));
  }
  if (!header.equals(SQLITE_HEADER)) {
    throw describeOpenFailure(file, Object.assign(new Error('file is not a database'), { code: 'SQLITE_NOTADB' }));
  }
  return true;
}

/** Throws StoreError for a SQLite database that is not cairn's: it has tables, none of them schema_migrations. */
function refuseForeignSchema(db: Database.Database, file: string): void {
  let tables: string[];
  try {
    tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
  } catch (e) {
    throw describeOpenFailure(file, toError(e));
  }
  if (tables.length > 0 && !tables.includes('schema_migrations')) {
    throw new StoreError(
      `${file} is a SQLite database, but not cairn's (it has tables ${tables.slice(0, 5).join(', ')} and no schema_migrations); ` +
        'cairn will not touch it. Point --data-dir at another directory.',
    );
  }
}

/** The database and the -wal and -shm beside it, readable by their owner only. */
function tightenModes(file: string): void {
  chmodSync(file, 0o600);
  for (const side of [`${file}-wal`, `${file}-shm`]) {
    try {
      chmodSync(side, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

/** Retries `fn` while the database is busy, up to the busy timeout; used only while opening. */
function whileBusy(file: string, fn: () => void): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return fn();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if ((code !== 'SQLITE_BUSY' && code !== 'SQLITE_LOCKED') || Date.now() > deadline) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25);
    }
  }
}

/**
 * Opens (creating if needed) the database file with private permissions, sets the pragmas and applies
 * pending migrations. Throws StoreError naming the file when it is not a usable SQLite database.
 */
export function openSqliteStore(file: string, options: SqliteStoreOptions = {}): SqliteStore {
  ensurePrivateDir(path.dirname(file));
  // Checked before anything changes the file (mode, WAL, schema): a file that is not ours stays as it
  // was. The schema is read on the connection cairn then uses: a second connection costs a read verb 1 ms.
  const existed = refuseNonSqliteFile(file);
  let db: Database.Database;
  try {
    if (!existed) ensurePrivateFile(file);
    db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  } catch (e) {
    throw describeOpenFailure(file, toError(e));
  }
  if (existed) {
    try {
      refuseForeignSchema(db, file);
      tightenModes(file);
    } catch (e) {
      db.close();
      throw e instanceof StoreError ? e : describeOpenFailure(file, toError(e));
    }
  }
  try {
    whileBusy(file, () => {
      // Only the first opener switches to WAL: the switch can fail with SQLITE_BUSY without calling
      // the busy handler while another process creates the database, so it is retried here.
      if (db.pragma('journal_mode', { simple: true }) !== 'wal') db.pragma('journal_mode = WAL');
      applyMigrations(db, file);
    });
    db.pragma(`synchronous = ${options.durability === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.pragma('foreign_keys = ON');
    // A WAL that grew during a burst is cut back to this size when it starts over.
    db.pragma('journal_size_limit = 67108864');
  } catch (e) {
    db.close();
    if (e instanceof StoreError) throw e;
    throw describeOpenFailure(file, toError(e));
  }
  return new SqliteStore(db, file);
}

/**
 * A second result for one stage run, caught by the UNIQUE index. Alone, the write fails with it; in a
 * group commit it becomes that write's refusal and the others commit.
 */
class DuplicateResult extends StoreError {
  readonly result: CommitResult;
  constructor(message: string) {
    super(message);
    this.result = { ok: false, reason: 'duplicate', message };
  }
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly stmt;
  private checkpointer: WalCheckpointer | null = null;
  private readonly listStatements = new Map<string, Database.Statement>();
  private readonly walSize: WalSizeGuard;
  private readonly claims: SqliteClaims;
  private readonly taskUpdate: SqliteTaskUpdate;

  constructor(
    readonly db: Database.Database,
    readonly location: string,
  ) {
    this.walSize = new WalSizeGuard(db, location, BUSY_TIMEOUT_MS);
    this.claims = new SqliteClaims(db);
    this.taskUpdate = new SqliteTaskUpdate(db);
    this.stmt = preparedOnFirstUse(db, {
      insertTask: `INSERT INTO tasks (request, priority, priority_rank, tags, state, status, snapshot, version,
                       created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
      insertDependency: 'INSERT INTO task_dependencies (task_id, depends_on) VALUES (?, ?)',
      taskExists: plucked('SELECT 1 FROM tasks WHERE id = ?'),
      getTask: `SELECT ${WITH_DEPENDENCIES} FROM tasks WHERE id = ?`,
      insertImportedTask: `INSERT INTO tasks (request, priority, priority_rank, tags, state, status, snapshot, version,
                               run_stage, run_attempt, run_after, lease_owner, lease_expires_at, lease_token, created_at, updated_at)
                             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      insertImportedRun: `INSERT INTO stage_runs (task_id, stage, attempt, run_id, session_id, started_at, finished_at, outcome, exit_code)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      insertEndedSession: `INSERT OR IGNORE INTO sessions (id, pid, host, started_at, last_heartbeat_at, status, ended_at)
                             VALUES (?, ?, ?, ?, ?, ?, ?)`,
      getIntake: plucked('SELECT task_ids FROM intake_keys WHERE source = ? AND key = ?'),
      insertIntake: 'INSERT INTO intake_keys (source, key, task_ids, at) VALUES (?, ?, ?, ?)',
      insertNote: `INSERT INTO notes (task_id, scope, kind, text, rationale, impact, category, stage, attempt, source, actor, at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      notesByTask: 'SELECT * FROM notes WHERE task_id = ? ORDER BY id',
      notesByScope: 'SELECT * FROM notes WHERE scope IS ? ORDER BY id',
      getCommitGuard: 'SELECT version, status, lease_owner, lease_token, priority_rank FROM tasks WHERE id = ?',
      nextSeq: plucked('SELECT coalesce(max(seq), 0) + 1 FROM transitions WHERE task_id = ?'),
      insertTransition: `INSERT INTO transitions (task_id, seq, from_state, to_state, event_type, stage, attempt,
                             event, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      insertCheckpoint: 'INSERT INTO checkpoints (task_id, name, seq, state, snapshot, at) VALUES (?, ?, ?, ?, ?, ?)',
      completeRun: `UPDATE stage_runs SET outcome = ?, finished_at = ?, exit_code = ?, signal = ?
                      WHERE task_id = ? AND stage = ? AND attempt = ? AND outcome IS NULL`,
      closeOpenRuns: `UPDATE stage_runs SET outcome = ?, finished_at = ? WHERE task_id = ? AND outcome IS NULL`,
      history: 'SELECT seq, from_state, to_state, event, actor, at FROM transitions WHERE task_id = ? ORDER BY seq',
      checkpoints: 'SELECT name, seq, state, snapshot, at FROM checkpoints WHERE task_id = ? ORDER BY id',
      stageRuns: 'SELECT * FROM stage_runs WHERE task_id = ? ORDER BY started_at, stage, attempt',
      openRuns: 'SELECT * FROM stage_runs WHERE outcome IS NULL ORDER BY task_id, started_at',
      countByStatus: 'SELECT status, count(*) AS n FROM tasks GROUP BY status',
      // INDEXED BY: left to itself the planner reads every pending task through tasks_state and sorts
      // them all for each dispatch round (~0.5 ms per 1,000 pending); the partial index is already in order.
      dispatchable: `SELECT ${withDependencies('t')} FROM tasks t INDEXED BY tasks_dispatch WHERE t.state = 'pending' AND NOT EXISTS (
                         SELECT 1 FROM task_dependencies d JOIN tasks dep ON dep.id = d.depends_on
                         WHERE d.task_id = t.id AND dep.state != 'completed')
                       ORDER BY t.priority_rank, t.created_at, t.id LIMIT ?`,
      runnable: `SELECT ${WITH_DEPENDENCIES} FROM tasks WHERE run_stage IS NOT NULL AND lease_owner IS NULL
                     AND (run_after IS NULL OR run_after <= ?)
                   ORDER BY priority_rank, coalesce(run_after, 0), id LIMIT ?`,
      resumable: `SELECT ${withDependencies('t')} FROM tasks t LEFT JOIN sessions s ON s.id = t.lease_owner
                    WHERE t.lease_owner IS NOT NULL
                      AND (t.lease_expires_at < ? OR s.status IS NULL OR s.status != 'active')
                    ORDER BY t.id`,
      setRunPgid: 'UPDATE stage_runs SET pgid = ? WHERE task_id = ? AND stage = ? AND attempt = ?',
      insertSession: `INSERT INTO sessions (id, pid, host, started_at, last_heartbeat_at, status)
                        VALUES (?, ?, ?, ?, ?, 'active') RETURNING *`,
      touchSession: "UPDATE sessions SET last_heartbeat_at = ? WHERE id = ? AND status = 'active'",
      renewLeases: 'UPDATE tasks SET lease_expires_at = ? WHERE lease_owner = ?',
      expireLeases: 'UPDATE tasks SET lease_expires_at = ? WHERE lease_owner = ? AND lease_expires_at > ?',
      endSession: "UPDATE sessions SET status = ?, ended_at = ? WHERE id = ? AND status IN ('active', 'stale')",
      sessions: 'SELECT * FROM sessions ORDER BY started_at DESC',
      sessionsByStatus: 'SELECT * FROM sessions WHERE status = ? ORDER BY started_at DESC',
    });
  }

  connection(): StoreConnection {
    return { kind: 'sqlite', db: this.db, file: this.location };
  }

  /** A filter's statement, prepared once: there are only a few shapes of filter. */
  private listStatement(sql: string): Database.Statement {
    let statement = this.listStatements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      // ids filters make one shape per list length: keep the cache small.
      if (this.listStatements.size < 64) this.listStatements.set(sql, statement);
    }
    return statement;
  }

  private write<T>(fn: () => T): T {
    let result: T;
    try {
      result = this.db.transaction(isArmedAtCommit ? crashBeforeCommit(fn) : fn).immediate();
    } catch (e) {
      throw this.describeWriteFailure(e);
    }
    this.walSize.afterCommit();
    return result;
  }

  private describeWriteFailure(e: unknown): Error {
    const error = toError(e);
    const code = (error as { code?: string }).code ?? '';
    if (code === 'SQLITE_FULL') {
      // Unavailable, not broken: the same write works once space is freed, and the daemon retries it.
      return new StoreUnavailableError(`the disk holding ${this.location} is full; nothing was written. Free some space and retry.`, {
        cause: error,
      });
    }
    if (code === 'SQLITE_BUSY') {
      return new StoreError(
        `${this.location} stayed locked by another process for ${BUSY_TIMEOUT_MS / 1000}s; nothing was written. Retry.`,
        { cause: error },
      );
    }
    if (code.startsWith('SQLITE_')) return new StoreError(`${this.location}: ${error.message}`, { cause: error });
    return error;
  }

  async createTask(task: NewTask): Promise<TaskRecord> {
    return this.write(() => this.insertTask(task, []));
  }

  async createTasksOnce(
    intake: IntakeKey,
    tasks: NewTask[],
    notes?: (ids: number[]) => NewNote[],
  ): Promise<{ tasks: TaskRecord[]; isNew: boolean }> {
    return this.write(() => {
      const earlier = this.stmt.getIntake.get(intake.source, intake.key) as string | undefined;
      if (earlier !== undefined) {
        const ids = JSON.parse(earlier) as number[];
        return { tasks: ids.map((id) => taskFromRow(this.stmt.getTask.get(id) as TaskRowWithDependencies)).filter((t) => t !== null), isNew: false };
      }
      const created: TaskRecord[] = [];
      for (const task of tasks) created.push(this.insertTask(task, created.map((t) => t.id)));
      const ids = created.map((t) => t.id);
      this.stmt.insertIntake.run(intake.source, intake.key, JSON.stringify(ids), tasks[0]?.at ?? Date.now());
      for (const note of notes?.(ids) ?? []) this.insertNote(note);
      return { tasks: created, isNew: true };
    });
  }

  async importTask(intake: IntakeKey, t: ImportedTask, notes?: (id: number) => NewNote[]): Promise<{ task: TaskRecord; isNew: boolean }> {
    return this.write(() => {
      const earlier = this.stmt.getIntake.get(intake.source, intake.key) as string | undefined;
      if (earlier !== undefined) {
        const [id] = JSON.parse(earlier) as number[];
        return { task: taskFromRow(this.stmt.getTask.get(id) as TaskRowWithDependencies)!, isNew: false };
      }
      for (const dep of t.dependsOn) {
        if (!this.stmt.taskExists.get(dep)) throw new StoreError(`task ${dep} does not exist, so nothing can depend on it`);
      }
      const info = this.stmt.insertImportedTask.run(
        t.request,
        t.priority,
        PRIORITY_RANK[t.priority],
        JSON.stringify(t.tags),
        t.state,
        t.status,
        JSON.stringify(t.snapshot),
        t.transitions.length,
        t.nextRun?.stage ?? null,
        t.nextRun?.attempt ?? null,
        t.nextRun?.notBefore ?? null,
        t.lease?.owner ?? null,
        t.lease?.expiresAt ?? null,
        t.lease ? 1 : 0,
        t.createdAt,
        t.updatedAt,
      );
      const id = Number(info.lastInsertRowid);
      for (const dep of new Set(t.dependsOn)) this.stmt.insertDependency.run(id, dep);
      t.transitions.forEach((tr, i) => {
        const e = tr.event as { type: string; stage?: string; attempt?: number };
        const isResult = e.type === 'STAGE_SUCCEEDED' || e.type === 'STAGE_FAILED';
        this.stmt.insertTransition.run(id, i + 1, tr.from, tr.to, e.type, isResult ? e.stage : null, isResult ? e.attempt : null, JSON.stringify(tr.event), tr.actor, tr.at);
      });
      for (const c of t.checkpoints) this.stmt.insertCheckpoint.run(id, c.name, c.transitionIndex + 1, c.state, JSON.stringify(c.snapshot), c.at);
      for (const r of t.runs) {
        this.stmt.insertImportedRun.run(id, r.stage, r.attempt, runIdOf(id, r.stage, r.attempt), t.lease?.owner ?? 'import', r.startedAt, r.finishedAt, r.outcome, r.exitCode);
      }
      this.stmt.insertIntake.run(intake.source, intake.key, JSON.stringify([id]), t.createdAt);
      for (const note of notes?.(id) ?? []) this.insertNote(note);
      return { task: taskFromRow(this.stmt.getTask.get(id) as TaskRowWithDependencies)!, isNew: true };
    });
  }

  async recordEndedSession(s: { id: string; pid: number; host: string; startedAt: number; lastHeartbeatAt: number; status: 'stopped' | 'crashed' }): Promise<void> {
    this.write(() => this.stmt.insertEndedSession.run(s.id, s.pid, s.host, s.startedAt, s.lastHeartbeatAt, s.status, s.lastHeartbeatAt));
  }

  /** Inserts one task with its SUBMIT transition and initial checkpoints, inside the caller's transaction. */
  private insertTask(task: NewTask, batchIds: number[]): TaskRecord {
    const dependsOn = [...task.dependsOn, ...(task.dependsOnBatch ?? []).map((i) => batchIds[i])];
    for (const dep of dependsOn) {
      if (dep === undefined || !this.stmt.taskExists.get(dep)) {
        throw new StoreError(`task ${dep} does not exist, so nothing can depend on it`);
      }
    }
    const info = this.stmt.insertTask.run(
      task.request,
      task.priority,
      PRIORITY_RANK[task.priority],
      JSON.stringify(task.tags),
      task.snapshot.value,
      'pending',
      JSON.stringify(task.snapshot),
      task.at,
      task.at,
    );
    const id = Number(info.lastInsertRowid);
    for (const dep of new Set(dependsOn)) this.stmt.insertDependency.run(id, dep);
    const submitEvent = dependsOn.length === task.dependsOn.length ? task.submitEvent : { ...task.submitEvent, depends_on: dependsOn };
    this.stmt.insertTransition.run(id, 1, null, task.snapshot.value, 'SUBMIT', null, null, JSON.stringify(submitEvent), task.actor, task.at);
    for (const name of task.checkpoints) {
      this.stmt.insertCheckpoint.run(id, name, 1, task.snapshot.value, JSON.stringify(task.snapshot), task.at);
    }
    return taskFromRow(this.stmt.getTask.get(id) as TaskRowWithDependencies)!;
  }

  private insertNote(note: NewNote): NoteRecord {
    const info = this.stmt.insertNote.run(
      note.taskId,
      note.scope,
      note.kind,
      note.text,
      note.rationale,
      note.impact,
      note.category,
      note.stage,
      note.attempt,
      note.source,
      note.actor,
      note.at,
    );
    return { ...note, id: Number(info.lastInsertRowid) };
  }

  async findIntake(intake: IntakeKey): Promise<number[] | null> {
    const found = this.stmt.getIntake.get(intake.source, intake.key) as string | undefined;
    return found === undefined ? null : (JSON.parse(found) as number[]);
  }

  async addNotes(notes: NewNote[]): Promise<NoteRecord[]> {
    return this.write(() => notes.map((n) => this.insertNote(n)));
  }

  async listNotes(filter: { taskId?: number; scope?: string }): Promise<NoteRecord[]> {
    const rows = (filter.taskId !== undefined
      ? this.stmt.notesByTask.all(filter.taskId)
      : this.stmt.notesByScope.all(filter.scope ?? null)) as NoteRow[];
    return rows.map(toNote);
  }

  async getTask(id: number): Promise<TaskRecord | null> {
    return taskFromRow(this.stmt.getTask.get(id) as TaskRowWithDependencies | undefined);
  }

  async listTasks(filter: TaskFilter = {}): Promise<TaskRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status) {
      where.push('status = ?');
      params.push(filter.status);
    }
    if (filter.state) {
      where.push('state = ?');
      params.push(filter.state);
    }
    if (filter.tag) {
      where.push('EXISTS (SELECT 1 FROM json_each(tasks.tags) WHERE value = ?)');
      params.push(filter.tag);
    }
    if (filter.ids) {
      where.push(`id IN (${filter.ids.map(() => '?').join(', ') || 'NULL'})`);
      params.push(...filter.ids);
    }
    const sql = `SELECT ${WITH_DEPENDENCIES} FROM tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id${
      filter.limit ? ' LIMIT ?' : ''
    }`;
    if (filter.limit) params.push(filter.limit);
    const rows = this.listStatement(sql).all(...params) as TaskRowWithDependencies[];
    return tasksFromRows(rows);
  }

  async getHistory(taskId: number): Promise<TransitionRecord[]> {
    const rows = this.stmt.history.all(taskId) as {
      seq: number;
      from_state: TaskState | null;
      to_state: TaskState;
      event: string;
      actor: string;
      at: number;
    }[];
    return rows.map((r) => ({ seq: r.seq, from: r.from_state, to: r.to_state, event: JSON.parse(r.event), actor: r.actor, at: r.at }));
  }

  async getCheckpoints(taskId: number): Promise<CheckpointRecord[]> {
    const rows = this.stmt.checkpoints.all(taskId) as { name: CheckpointRecord['name']; seq: number; state: TaskState; snapshot: string; at: number }[];
    return rows.map((r) => ({ ...r, snapshot: JSON.parse(r.snapshot) }));
  }

  async getStageRuns(taskId: number): Promise<StageRunRecord[]> {
    return (this.stmt.stageRuns.all(taskId) as RunRow[]).map(toRun);
  }

  async listOpenRuns(): Promise<StageRunRecord[]> {
    return (this.stmt.openRuns.all() as RunRow[]).map(toRun);
  }

  async countByStatus(): Promise<Record<string, number>> {
    const rows = this.stmt.countByStatus.all() as { status: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async commitTransitions(writes: TransitionWrite[]): Promise<CommitResult[]> {
    const round = newClaimRound(writes);
    if (writes.length === 1) return this.write(() => [this.commitOne(writes[0], round)]);
    // A batch (group commit). A refused write changes nothing, so the batch needs no savepoints; only
    // a second result caught by the UNIQUE index throws, and then the batch is done again with each
    // write in a savepoint of its own, so that write is rolled back alone and the others still commit.
    try {
      return this.write(() => writes.map((w) => this.commitOne(w, round)));
    } catch (e) {
      if (!(e instanceof DuplicateResult)) throw e;
      return this.write(() =>
        writes.map((w) => {
          try {
            return this.db.transaction(() => this.commitOne(w, newClaimRound(writes)))();
          } catch (e) {
            if (e instanceof DuplicateResult) return e.result;
            throw e;
          }
        }),
      );
    }
  }

  /**
   * One transition inside the caller's transaction. Every check comes before the first change, so a
   * refused write changes nothing; the UNIQUE index, the last guard, throws to roll back.
   */
  private commitOne(w: TransitionWrite, round: ClaimRound): CommitResult {
    const guard = this.stmt.getCommitGuard.get(w.taskId) as
      | { version: number; status: string; lease_owner: string | null; lease_token: number; priority_rank: number }
      | undefined;
    if (!guard) return { ok: false, reason: 'missing', message: `task ${w.taskId} does not exist` };
    if (guard.version !== w.expectedVersion) {
      return {
        ok: false,
        reason: 'conflict',
        message: `task ${w.taskId} changed (version ${guard.version}, expected ${w.expectedVersion})`,
      };
    }
    const c = w.completion;
    if (c) {
      if (guard.lease_owner === null || guard.lease_token !== c.leaseToken) {
        return {
          ok: false,
          reason: 'fenced',
          message: `task ${w.taskId}: the lease for ${c.stage} attempt ${c.attempt} was lost (token ${c.leaseToken}, now ${guard.lease_token})`,
        };
      }
      const done = this.stmt.completeRun.run(c.outcome, w.at, c.exitCode, c.signal, w.taskId, c.stage, c.attempt);
      if (done.changes !== 1) {
        return { ok: false, reason: 'duplicate', message: `task ${w.taskId}: ${c.stage} attempt ${c.attempt} was already recorded` };
      }
    } else {
      // Any other transition ends whatever run was open: it was interrupted (RESUME) or overtaken (cancel, rewind).
      this.stmt.closeOpenRuns.run(w.event.type === 'RESUME' ? 'interrupted' : 'superseded', w.at, w.taskId);
    }
    const stage = c?.stage ?? null;
    const attempt = c?.attempt ?? null;
    const event = JSON.stringify(w.event);
    // Every transition bumps the version by one, so the next seq is the version after this write; a
    // history that breaks the rule (a hand-edited file) is caught by the primary key and read instead.
    let seq = w.expectedVersion + 1;
    try {
      try {
        this.stmt.insertTransition.run(w.taskId, seq, w.from, w.to, w.event.type, stage, attempt, event, w.actor, w.at);
      } catch (e) {
        if ((e as { code?: string }).code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') throw e;
        seq = this.stmt.nextSeq.get(w.taskId) as number;
        this.stmt.insertTransition.run(w.taskId, seq, w.from, w.to, w.event.type, stage, attempt, event, w.actor, w.at);
      }
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        // Thrown, not returned: the run's row was already marked complete above and must be rolled back.
        throw new DuplicateResult(`task ${w.taskId}: ${stage} attempt ${attempt} already has a recorded result`);
      }
      throw e;
    }
    const snapshot = JSON.stringify(w.snapshot);
    const claim = this.claims.nextRun(w, round, guard.priority_rank);
    const lease = claim ? { owner: claim.session_id, expiresAt: w.at + w.claimFor!.leaseMs } : null;
    const task = this.taskUpdate.run(w, guard, snapshot, lease);
    for (const name of w.checkpoints) this.stmt.insertCheckpoint.run(w.taskId, name, seq, w.to, snapshot, w.at);
    for (const note of w.notes ?? []) this.insertNote(note);
    return { ok: true, task, seq, claimed: claim ? { task, run: toRun(claim), lease: task.lease! } : undefined };
  }

  async findDispatchable(limit: number): Promise<TaskRecord[]> {
    return tasksFromRows(this.stmt.dispatchable.all(limit) as TaskRowWithDependencies[]);
  }

  async findRunnable(now: number, limit: number): Promise<TaskRecord[]> {
    return tasksFromRows(this.stmt.runnable.all(now, limit) as TaskRowWithDependencies[]);
  }

  async findResumable(now: number): Promise<TaskRecord[]> {
    return tasksFromRows(this.stmt.resumable.all(now) as TaskRowWithDependencies[]);
  }

  async claimRun(taskId: number, sessionId: string, now: number, leaseMs: number): Promise<ClaimedRun | null> {
    return (await this.claimRuns([taskId], sessionId, now, leaseMs))[0] ?? null;
  }

  async claimRuns(taskIds: number[], sessionId: string, now: number, leaseMs: number): Promise<ClaimedRun[]> {
    if (taskIds.length === 0) return [];
    return this.write(() =>
      this.claims.waitingRuns(taskIds, sessionId, now, leaseMs).map(({ run, task: row }) => {
        const task = taskFromRow(row)!;
        return { task, run: toRun(run), lease: task.lease! };
      }),
    );
  }

  async recordRunProcess(taskId: number, stage: StageName, attempt: number, pgid: number): Promise<void> {
    this.write(() => this.stmt.setRunPgid.run(pgid, taskId, stage, attempt));
  }

  async createSession(s: { id: string; pid: number; host: string; at: number }): Promise<SessionRecord> {
    return this.write(() => {
      return toSession(this.stmt.insertSession.get(s.id, s.pid, s.host, s.at, s.at) as SessionRow);
    });
  }

  async heartbeatSession(id: string, now: number, leaseMs: number): Promise<void> {
    this.write(() => {
      // A session already marked stale or crashed keeps no leases alive: others may be resuming its tasks.
      if (this.stmt.touchSession.run(now, id).changes === 1) this.stmt.renewLeases.run(now + leaseMs, id);
    });
  }

  async endSession(id: string, status: 'stopped' | 'crashed' | 'stale', at: number): Promise<void> {
    this.write(() => {
      // An ended session's leases are over too: its tasks are resumable, and no lease outlives its holder.
      if (this.stmt.endSession.run(status, at, id).changes === 1) this.stmt.expireLeases.run(at, id, at);
    });
  }

  async listSessions(filter: { status?: SessionRecord['status'] } = {}): Promise<SessionRecord[]> {
    const rows = (filter.status ? this.stmt.sessionsByStatus.all(filter.status) : this.stmt.sessions.all()) as SessionRow[];
    return rows.map(toSession);
  }

  /** A cheap counter SQLite bumps whenever another connection commits: lets the daemon notice CLI writes. */
  async changeMarker(): Promise<number> {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  async watchChanges(onChange: () => void, onError: (e: unknown) => void): Promise<() => void> {
    if (this.location === ':memory:') return () => {};
    // Loaded here, not at the top: read verbs open this store and never watch.
    const { doorbellPath, watchDoorbell } = await import('./doorbell.js');
    const watch = watchDoorbell(doorbellPath(this.location), onChange, onError);
    return () => watch.close();
  }

  checkpointInBackground(onError: (message: string) => void): void {
    if (this.checkpointer || this.location === ':memory:') return;
    const synchronous = this.db.pragma('synchronous', { simple: true }) === 2 ? 'FULL' : 'NORMAL';
    this.checkpointer = new WalCheckpointer(this.db, this.location, synchronous, (message) => {
      this.walSize.backgroundCheckpoints(false);
      onError(message);
    });
    this.walSize.backgroundCheckpoints(true);
  }

  async close(): Promise<void> {
    await this.checkpointer?.stop();
    this.checkpointer = null;
    this.walSize.backgroundCheckpoints(false);
    if (this.db.open) this.db.close();
  }
}
