/**
 * The PostgreSQL store on `pg`, for several daemons sharing one database. Same contract as sqlite.ts;
 * what differs is how it holds: every write is one statement (a CTE or a function from the
 * migrations), so it is its own transaction and one round trip; a claim locks the task row, re-checks
 * it and takes the lease in that one statement; commits `pg_notify` the schema's channel, which
 * changeMarker() counts.
 * A statement that fails because the connection was cut is tried once more on a new connection; the
 * writes are built so that second try cannot apply twice (see the `p_is_retry` arguments).
 */
import pg from 'pg';
import type { StageName, TaskState } from '../../machines/task.machine.js';
import { StoreError, StoreUnavailableError, toError } from '../errors.js';
import { applyPostgresMigrations } from './migratePostgres.js';
import { clientConfig, createPool, describeConnectFailure, inTransaction, isConnectionError, parsePostgresUrl, type PostgresTarget } from './postgresConnection.js';
import { ChangeListener } from './postgresListener.js';
import { PRIORITY_RANK, toNote, toRun, toSession, toTask, type NoteRow, type RunRow, type SessionRow, type TaskRow } from './rows.js';
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

const RETRY_DELAY_MS = 100;

export interface PostgresStoreOptions {
  /** Config `store.schema`; wins over a `?schema=` in the URL. Default `public`. */
  schema?: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
}

/** A task row with its dependencies, from a plain query or from a function's row_to_json. */
/** Every task column plus its dependencies, oldest first: one query, no second round trip per task. */
const TASK = `t.*, ARRAY(SELECT d.depends_on FROM task_dependencies d WHERE d.task_id = t.id ORDER BY d.depends_on) AS depends_on`;

function noteParam(n: NewNote) {
  return {
    task_id: n.taskId,
    scope: n.scope,
    kind: n.kind,
    text: n.text,
    rationale: n.rationale,
    impact: n.impact,
    category: n.category,
    stage: n.stage,
    attempt: n.attempt,
    source: n.source,
    actor: n.actor,
    at: n.at,
  };
}

/** A new task as cairn_create_task reads it: JSON columns as the strings SQLite would store. */
function newTaskParam(task: NewTask, dependsOn: number[], submitEvent: NewTask['submitEvent']) {
  return {
    request: task.request,
    priority: task.priority,
    priority_rank: PRIORITY_RANK[task.priority],
    tags: JSON.stringify(task.tags),
    state: task.snapshot.value,
    snapshot: JSON.stringify(task.snapshot),
    at: task.at,
    depends_on: dependsOn,
    submit_event: JSON.stringify(submitEvent),
    actor: task.actor,
    checkpoints: task.checkpoints,
  };
}

/** A transition as cairn_commit_transitions reads it. */
function writeParam(w: TransitionWrite) {
  const c = w.completion;
  return {
    task_id: w.taskId,
    expected_version: w.expectedVersion,
    from: w.from,
    to: w.to,
    status: w.status,
    event_type: w.event.type,
    event: JSON.stringify(w.event),
    actor: w.actor,
    at: w.at,
    snapshot: JSON.stringify(w.snapshot),
    checkpoints: w.checkpoints,
    run_stage: w.nextRun?.stage ?? null,
    run_attempt: w.nextRun?.attempt ?? null,
    run_after: w.nextRun?.notBefore ?? null,
    completion: c
      ? { stage: c.stage, attempt: c.attempt, outcome: c.outcome, exit_code: c.exitCode, signal: c.signal, lease_token: c.leaseToken }
      : null,
    notes: (w.notes ?? []).map(noteParam),
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Connects, creates the schema if needed and applies pending migrations under an advisory lock.
 * Throws StoreError naming host:port (StoreUnavailableError when it cannot be reached) and what to check.
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const target = parsePostgresUrl(url, options.schema);
  const pool = createPool(target, options.poolSize);
  try {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (e) {
      throw describeConnectFailure(target, e);
    }
    const onError = () => undefined;
    client.on('error', onError);
    try {
      await applyPostgresMigrations(client, target.schema, target.location);
    } catch (e) {
      if (e instanceof StoreError) throw e;
      throw describeConnectFailure(target, e);
    } finally {
      client.off('error', onError);
      client.release();
    }
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw e;
  }
  return new PostgresStore(pool, target);
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly location: string;
  /** Backend pids of this pool's connections: their notifications are our own commits. */
  private readonly ownPids = new Set<number>();
  private readonly listener: ChangeListener;
  private isClosed = false;

  constructor(
    readonly pool: pg.Pool,
    readonly target: PostgresTarget,
  ) {
    this.location = target.location;
    pool.on('connect', (client) => {
      const pid = (client as unknown as { processID?: number }).processID;
      if (pid) this.ownPids.add(pid);
    });
    pool.on('remove', (client) => {
      const pid = (client as unknown as { processID?: number }).processID;
      if (pid) this.ownPids.delete(pid);
    });
    this.listener = new ChangeListener(clientConfig(target), `cairn_changes:${target.schema}`, this.ownPids);
  }

  connection(): StoreConnection {
    return { kind: 'postgres', pool: this.pool, target: this.target };
  }

  /**
   * Runs `fn`; if the connection was cut, once more on a new one (`isRetry` tells the statement so it
   * can recognise its own first try). Errors become StoreErrors that say where and what.
   */
  private async withRetry<T>(what: string, fn: (isRetry: boolean) => Promise<T>): Promise<T> {
    try {
      return await fn(false);
    } catch (e) {
      if (!isConnectionError(e) || this.isClosed) throw this.describe(e, what);
    }
    await sleep(RETRY_DELAY_MS);
    try {
      return await fn(true);
    } catch (e) {
      throw this.describe(e, what);
    }
  }

  private async query<R extends pg.QueryResultRow>(what: string, sql: string, params: unknown[] = []): Promise<R[]> {
    return this.withRetry(what, async () => (await this.pool.query<R>(sql, params)).rows);
  }

  /** One transaction on one connection, for the few writes that need our code between statements. */
  private transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn);
  }

  private describe(e: unknown, what: string): Error {
    if (e instanceof StoreError) return e;
    const error = toError(e);
    const { code, detail, constraint } = error as { code?: string; detail?: string; constraint?: string };
    if (isConnectionError(error)) {
      return new StoreUnavailableError(
        `lost the connection to PostgreSQL at ${this.target.host}:${this.target.port} while ${what} (${error.message}); ` +
          'nothing more was done. Check that the server is up; cairn reconnects on its own.',
        { cause: error },
      );
    }
    if (code === 'CA001') return new StoreError(error.message, { cause: error });
    if (code === '23505' && constraint === 'transitions_one_result_per_run') {
      const [, taskId, stage, attempt] = /=\((\d+), ([^,]+), (\d+)\)/.exec(detail ?? '') ?? [];
      return new StoreError(`task ${taskId}: ${stage} attempt ${attempt} already has a recorded result`, { cause: error });
    }
    if (code === '22P05' || code === '22021') {
      return new StoreError(`${what}: the text holds a character PostgreSQL cannot store (such as NUL): ${error.message}`, { cause: error });
    }
    return new StoreError(`${this.location}: ${what} failed: ${error.message}`, { cause: error });
  }

  async createTask(task: NewTask): Promise<TaskRecord> {
    const param = JSON.stringify(newTaskParam(task, task.dependsOn, task.submitEvent));
    return this.withRetry('creating a task', async (isRetry) => {
      const { rows } = await this.pool.query<{ task: TaskRow }>('SELECT cairn_create_task($1::jsonb, $2) AS task', [param, isRetry]);
      return toTask(rows[0].task);
    });
  }

  async createTasksOnce(
    intake: IntakeKey,
    tasks: NewTask[],
    notes?: (ids: number[]) => NewNote[],
  ): Promise<{ tasks: TaskRecord[]; isNew: boolean }> {
    // Safe to try twice: the intake key makes a second try find the first one's tasks.
    return this.withRetry('taking in a batch of tasks', () =>
      this.transaction(async (client) => {
        const at = tasks[0]?.at ?? Date.now();
        // Claims the key first: a concurrent taker of the same key waits here, then finds it taken.
        const claimed = await client.query(
          `INSERT INTO intake_keys (source, key, task_ids, at) VALUES ($1, $2, '[]', $3) ON CONFLICT (source, key) DO NOTHING`,
          [intake.source, intake.key, at],
        );
        if (claimed.rowCount === 0) {
          const { rows } = await client.query<{ task_ids: string }>('SELECT task_ids FROM intake_keys WHERE source = $1 AND key = $2', [
            intake.source,
            intake.key,
          ]);
          const ids = JSON.parse(rows[0].task_ids) as number[];
          const found = await client.query<TaskRow>(`SELECT ${TASK} FROM tasks t WHERE t.id = ANY($1::bigint[]) ORDER BY t.id`, [ids]);
          const byId = new Map(found.rows.map((r) => [Number(r.id), toTask(r)]));
          return { tasks: ids.map((id) => byId.get(id)).filter((t): t is TaskRecord => t !== undefined), isNew: false };
        }
        const created: TaskRecord[] = [];
        for (const task of tasks) {
          const batch = (task.dependsOnBatch ?? []).map((i) => created[i]?.id);
          if (batch.some((id) => id === undefined)) {
            throw new StoreError(`task undefined does not exist, so nothing can depend on it`);
          }
          const dependsOn = [...task.dependsOn, ...(batch as number[])];
          const submitEvent = batch.length === 0 ? task.submitEvent : { ...task.submitEvent, depends_on: dependsOn };
          const param = JSON.stringify(newTaskParam(task, dependsOn, submitEvent));
          const { rows } = await client.query<{ task: TaskRow }>('SELECT cairn_create_task($1::jsonb, false) AS task', [param]);
          created.push(toTask(rows[0].task));
        }
        const ids = created.map((t) => t.id);
        await client.query('UPDATE intake_keys SET task_ids = $3 WHERE source = $1 AND key = $2', [intake.source, intake.key, JSON.stringify(ids)]);
        const newNotes = notes?.(ids) ?? [];
        if (newNotes.length) await this.insertNotes(client, newNotes);
        return { tasks: created, isNew: true };
      }),
    );
  }

  async importTask(intake: IntakeKey, t: ImportedTask, notes?: (id: number) => NewNote[]): Promise<{ task: TaskRecord; isNew: boolean }> {
    // Safe to try twice: the intake key makes a second try find the first one's task.
    return this.withRetry('importing a task', () =>
      this.transaction(async (client) => {
        const claimed = await client.query(
          `INSERT INTO intake_keys (source, key, task_ids, at) VALUES ($1, $2, '[]', $3) ON CONFLICT (source, key) DO NOTHING`,
          [intake.source, intake.key, t.createdAt],
        );
        if (claimed.rowCount === 0) {
          const { rows } = await client.query<TaskRow>(
            `SELECT ${TASK} FROM tasks t WHERE t.id = (SELECT (task_ids::jsonb->>0)::bigint FROM intake_keys WHERE source = $1 AND key = $2)`,
            [intake.source, intake.key],
          );
          return { task: toTask(rows[0]), isNew: false };
        }
        const missing = await client.query<{ dep: number }>(
          'SELECT d AS dep FROM unnest($1::bigint[]) d WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE id = d) LIMIT 1',
          [t.dependsOn],
        );
        if (missing.rows[0]) throw new StoreError(`task ${missing.rows[0].dep} does not exist, so nothing can depend on it`);
        const { rows } = await client.query<{ id: number }>(
          `INSERT INTO tasks (request, priority, priority_rank, tags, state, status, snapshot, version, run_stage, run_attempt, run_after,
                              lease_owner, lease_expires_at, lease_token, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
          [
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
          ],
        );
        const id = rows[0].id;
        await client.query('INSERT INTO task_dependencies (task_id, depends_on) SELECT DISTINCT $1::bigint, d FROM unnest($2::bigint[]) d', [id, t.dependsOn]);
        const transitions = t.transitions.map((tr, i) => {
          const e = tr.event as { type: string; stage?: string; attempt?: number };
          const isResult = e.type === 'STAGE_SUCCEEDED' || e.type === 'STAGE_FAILED';
          return { seq: i + 1, from: tr.from, to: tr.to, type: e.type, stage: isResult ? e.stage : null, attempt: isResult ? e.attempt : null, event: JSON.stringify(tr.event), actor: tr.actor, at: tr.at };
        });
        await client.query(
          `INSERT INTO transitions (task_id, seq, from_state, to_state, event_type, stage, attempt, event, actor, at)
           SELECT $1, x.seq, x."from", x."to", x.type, x.stage, x.attempt, x.event, x.actor, x.at
             FROM jsonb_to_recordset($2::jsonb) AS x(seq INTEGER, "from" TEXT, "to" TEXT, type TEXT, stage TEXT, attempt INTEGER, event TEXT, actor TEXT, at BIGINT)`,
          [id, JSON.stringify(transitions)],
        );
        for (const c of t.checkpoints) {
          await client.query('INSERT INTO checkpoints (task_id, name, seq, state, snapshot, at) VALUES ($1, $2, $3, $4, $5, $6)', [
            id,
            c.name,
            c.transitionIndex + 1,
            c.state,
            JSON.stringify(c.snapshot),
            c.at,
          ]);
        }
        for (const r of t.runs) {
          await client.query(
            `INSERT INTO stage_runs (task_id, stage, attempt, run_id, session_id, started_at, finished_at, outcome, exit_code)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
            [id, r.stage, r.attempt, `${id}.${r.stage}.${r.attempt}`, t.lease?.owner ?? 'import', r.startedAt, r.finishedAt, r.outcome, r.exitCode],
          );
        }
        await client.query('UPDATE intake_keys SET task_ids = $3 WHERE source = $1 AND key = $2', [intake.source, intake.key, JSON.stringify([id])]);
        const newNotes = notes?.(id) ?? [];
        if (newNotes.length) await this.insertNotes(client, newNotes);
        await client.query('SELECT cairn_notify_change()');
        const { rows: created } = await client.query<TaskRow>(`SELECT ${TASK} FROM tasks t WHERE t.id = $1`, [id]);
        return { task: toTask(created[0]), isNew: true };
      }),
    );
  }

  async recordEndedSession(s: { id: string; pid: number; host: string; startedAt: number; lastHeartbeatAt: number; status: 'stopped' | 'crashed' }): Promise<void> {
    await this.query(
      'recording an ended session',
      `INSERT INTO sessions (id, pid, host, started_at, last_heartbeat_at, status, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $5)
       ON CONFLICT (id) DO NOTHING`,
      [s.id, s.pid, s.host, s.startedAt, s.lastHeartbeatAt, s.status],
    );
  }

  async findIntake(intake: IntakeKey): Promise<number[] | null> {
    const rows = await this.query<{ task_ids: string }>('reading an intake key', 'SELECT task_ids FROM intake_keys WHERE source = $1 AND key = $2', [
      intake.source,
      intake.key,
    ]);
    return rows[0] ? (JSON.parse(rows[0].task_ids) as number[]) : null;
  }

  private async insertNotes(client: pg.Pool | pg.PoolClient, notes: NewNote[]): Promise<NoteRecord[]> {
    const { rows } = await client.query<{ id: number }>(
      `INSERT INTO notes (task_id, scope, kind, text, rationale, impact, category, stage, attempt, source, actor, at)
       SELECT n.task_id, n.scope, n.kind, n.text, n.rationale, n.impact, n.category, n.stage, n.attempt, n.source, n.actor, n.at
         FROM jsonb_to_recordset($1::jsonb) AS n(task_id BIGINT, scope TEXT, kind TEXT, text TEXT, rationale TEXT, impact TEXT,
              category TEXT, stage TEXT, attempt INTEGER, source TEXT, actor TEXT, at BIGINT)
       RETURNING id`,
      [JSON.stringify(notes.map(noteParam))],
    );
    const ids = rows.map((r) => r.id).sort((a, b) => a - b);
    return notes.map((n, i) => ({ ...n, id: ids[i] }));
  }

  async addNotes(notes: NewNote[]): Promise<NoteRecord[]> {
    if (notes.length === 0) return [];
    // Not retried: a note has no key that would let a second try see the first one committed.
    try {
      return await this.insertNotes(this.pool, notes);
    } catch (e) {
      throw this.describe(e, 'recording notes');
    }
  }

  async listNotes(filter: { taskId?: number; scope?: string }): Promise<NoteRecord[]> {
    const rows =
      filter.taskId !== undefined
        ? await this.query<NoteRow>('reading notes', 'SELECT * FROM notes WHERE task_id = $1 ORDER BY id', [filter.taskId])
        : await this.query<NoteRow>('reading notes', 'SELECT * FROM notes WHERE scope IS NOT DISTINCT FROM $1 ORDER BY id', [
            filter.scope ?? null,
          ]);
    return rows.map(toNote);
  }

  async getTask(id: number): Promise<TaskRecord | null> {
    const rows = await this.query<TaskRow>(`reading task ${id}`, `SELECT ${TASK} FROM tasks t WHERE t.id = $1`, [id]);
    return rows[0] ? toTask(rows[0]) : null;
  }

  async listTasks(filter: TaskFilter = {}): Promise<TaskRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (value: unknown) => {
      params.push(value);
      return `$${params.length}`;
    };
    if (filter.status) where.push(`t.status = ${param(filter.status)}`);
    if (filter.state) where.push(`t.state = ${param(filter.state)}`);
    if (filter.tag) where.push(`t.tags::jsonb @> jsonb_build_array(${param(filter.tag)}::text)`);
    if (filter.ids) where.push(`t.id = ANY(${param(filter.ids)}::bigint[])`);
    const sql = `SELECT ${TASK} FROM tasks t ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY t.id${
      filter.limit ? ` LIMIT ${param(filter.limit)}` : ''
    }`;
    return (await this.query<TaskRow>('listing tasks', sql, params)).map(toTask);
  }

  async getHistory(taskId: number): Promise<TransitionRecord[]> {
    const rows = await this.query<{ seq: number; from_state: TaskState | null; to_state: TaskState; event: string; actor: string; at: number }>(
      `reading the history of task ${taskId}`,
      'SELECT seq, from_state, to_state, event, actor, at FROM transitions WHERE task_id = $1 ORDER BY seq',
      [taskId],
    );
    return rows.map((r) => ({ seq: r.seq, from: r.from_state, to: r.to_state, event: JSON.parse(r.event), actor: r.actor, at: r.at }));
  }

  async getCheckpoints(taskId: number): Promise<CheckpointRecord[]> {
    const rows = await this.query<{ name: CheckpointRecord['name']; seq: number; state: TaskState; snapshot: string; at: number }>(
      `reading the checkpoints of task ${taskId}`,
      'SELECT name, seq, state, snapshot, at FROM checkpoints WHERE task_id = $1 ORDER BY id',
      [taskId],
    );
    return rows.map((r) => ({ ...r, snapshot: JSON.parse(r.snapshot) }));
  }

  async getStageRuns(taskId: number): Promise<StageRunRecord[]> {
    const rows = await this.query<RunRow>(
      `reading the stage runs of task ${taskId}`,
      'SELECT * FROM stage_runs WHERE task_id = $1 ORDER BY started_at, stage COLLATE "C", attempt',
      [taskId],
    );
    return rows.map(toRun);
  }

  async listOpenRuns(): Promise<StageRunRecord[]> {
    const rows = await this.query<RunRow>('reading the open stage runs', 'SELECT * FROM stage_runs WHERE outcome IS NULL ORDER BY task_id, started_at');
    return rows.map(toRun);
  }

  async countByStatus(): Promise<Record<string, number>> {
    const rows = await this.query<{ status: string; n: number }>(
      'counting tasks',
      'SELECT status, count(*)::integer AS n FROM tasks GROUP BY status ORDER BY status COLLATE "C"',
    );
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async commitTransitions(writes: TransitionWrite[]): Promise<CommitResult[]> {
    if (writes.length === 0) return [];
    const param = JSON.stringify(writes.map(writeParam));
    const rows = await this.withRetry(
      `committing a transition of task ${writes.map((w) => w.taskId).join(', ')}`,
      async (isRetry) =>
        (
          await this.pool.query<{ ok: boolean; reason: string | null; message: string | null; seq: number | null; task: TaskRow | null }>(
            'SELECT ok, reason, message, seq, task FROM cairn_commit_transitions($1::jsonb, $2)',
            [param, isRetry],
          )
        ).rows,
    );
    const results = rows.map((r): CommitResult =>
      r.ok
        ? { ok: true, task: toTask(r.task!), seq: r.seq! }
        : { ok: false, reason: r.reason as 'conflict' | 'fenced' | 'duplicate' | 'missing', message: r.message! },
    );
    return this.claimAfterCommit(writes, results);
  }

  /**
   * Claims the runs the writes asked for (TransitionWrite.claimFor) in one statement right after their
   * commit: one round trip for the batch instead of a dispatch round's two. A task whose priority is
   * below that of a run already waiting for a slot is left to dispatch, which goes by priority. Best
   * effort: a run this cannot claim (taken by another daemon meanwhile, a stale session, a cut
   * connection) stays runnable and dispatch claims it.
   */
  private async claimAfterCommit(writes: TransitionWrite[], results: CommitResult[]): Promise<CommitResult[]> {
    const wanted = writes.filter(
      (w, i) => results[i].ok && w.claimFor && w.nextRun && (w.nextRun.notBefore === null || w.nextRun.notBefore <= w.at),
    );
    const bySession = new Map<string, TransitionWrite[]>();
    for (const w of wanted) bySession.set(w.claimFor!.sessionId, [...(bySession.get(w.claimFor!.sessionId) ?? []), w]);
    for (const [sessionId, group] of bySession) {
      let claims: ClaimedRun[];
      try {
        const now = Math.max(...group.map((w) => w.at));
        claims = await this.claimRound(group.map((w) => w.taskId), sessionId, now, group[0].claimFor!.leaseMs, true);
      } catch {
        continue; // committed all the same; dispatch claims these runs
      }
      for (const claim of claims) {
        const i = writes.findIndex((w) => w.taskId === claim.task.id);
        const result = results[i];
        if (result.ok) results[i] = { ...result, task: claim.task, claimed: claim };
      }
    }
    return results;
  }

  async findDispatchable(limit: number): Promise<TaskRecord[]> {
    const rows = await this.query<TaskRow>(
      'looking for pending tasks',
      `SELECT ${TASK} FROM tasks t
        WHERE t.state = 'pending' AND NOT EXISTS (
          SELECT 1 FROM task_dependencies d JOIN tasks dep ON dep.id = d.depends_on
           WHERE d.task_id = t.id AND dep.state <> 'completed')
        ORDER BY t.priority_rank, t.created_at, t.id LIMIT $1`,
      [limit],
    );
    return rows.map(toTask);
  }

  async findRunnable(now: number, limit: number): Promise<TaskRecord[]> {
    const rows = await this.query<TaskRow>(
      'looking for runnable stages',
      `SELECT ${TASK} FROM tasks t
        WHERE t.run_stage IS NOT NULL AND t.lease_owner IS NULL AND (t.run_after IS NULL OR t.run_after <= $1)
        ORDER BY t.priority_rank, coalesce(t.run_after, 0), t.id LIMIT $2`,
      [now, limit],
    );
    return rows.map(toTask);
  }

  async findResumable(now: number): Promise<TaskRecord[]> {
    const rows = await this.query<TaskRow>(
      'looking for interrupted stages',
      `SELECT ${TASK} FROM tasks t LEFT JOIN sessions s ON s.id = t.lease_owner
        WHERE t.lease_owner IS NOT NULL AND (t.lease_expires_at < $1 OR s.status IS NULL OR s.status <> 'active')
        ORDER BY t.id`,
      [now],
    );
    return rows.map(toTask);
  }

  /**
   * A round of claims in one statement, so one round trip and one commit cover them all. Task rows are
   * locked in id order, so two daemons claiming overlapping rounds never wait on each other in a circle.
   */
  async claimRuns(taskIds: number[], sessionId: string, now: number, leaseMs: number): Promise<ClaimedRun[]> {
    if (taskIds.length <= 1) return taskIds.length ? [await this.claimRun(taskIds[0], sessionId, now, leaseMs)].filter((c) => c !== null) : [];
    return this.claimRound(taskIds, sessionId, now, leaseMs, false);
  }

  /**
   * The round of claims behind claimRuns and claimAfterCommit. With `yieldToHigherPriority`, a task
   * whose priority is below that of a run already waiting for a slot is not claimed (OFFSET 0 keeps
   * that filter below the claim).
   */
  private async claimRound(taskIds: number[], sessionId: string, now: number, leaseMs: number, yieldToHigherPriority: boolean) {
    const ids = [...taskIds].sort((a, b) => a - b);
    const rows = await this.withRetry(`claiming the next stages of tasks ${ids.join(', ')}`, async (isRetry) => {
      const result = await this.pool.query<{ task: TaskRow; run: RunRow }>(
        `SELECT c.task, c.run
           FROM (SELECT ids.id, ids.n FROM unnest($1::bigint[]) WITH ORDINALITY AS ids(id, n)
                   JOIN tasks t ON t.id = ids.id
                  WHERE NOT $6 OR t.priority_rank <= coalesce((SELECT min(priority_rank) FROM tasks w
                                                               WHERE w.run_stage IS NOT NULL AND w.lease_owner IS NULL
                                                                 AND (w.run_after IS NULL OR w.run_after <= $3)), 2)
                 OFFSET 0) AS wanted,
                LATERAL cairn_claim_run(wanted.id, $2, $3, $4, $5) AS c
          ORDER BY wanted.n`,
        [ids, sessionId, now, leaseMs, isRetry, yieldToHigherPriority],
      );
      return result.rows;
    });
    return rows.map((r): ClaimedRun => {
      const task = toTask(r.task);
      return { task, run: toRun(r.run), lease: task.lease! };
    });
  }

  async claimRun(taskId: number, sessionId: string, now: number, leaseMs: number): Promise<ClaimedRun | null> {
    const rows = await this.withRetry(`claiming the next stage of task ${taskId}`, async (isRetry) => {
      const result = await this.pool.query<{ task: TaskRow; run: RunRow }>(
        'SELECT task, run FROM cairn_claim_run($1, $2, $3, $4, $5)',
        [taskId, sessionId, now, leaseMs, isRetry],
      );
      return result.rows;
    });
    if (!rows[0]) return null;
    const task = toTask(rows[0].task);
    return { task, run: toRun(rows[0].run), lease: task.lease! };
  }

  async recordRunProcess(taskId: number, stage: StageName, attempt: number, pgid: number): Promise<void> {
    await this.query('recording a stage process', 'UPDATE stage_runs SET pgid = $1 WHERE task_id = $2 AND stage = $3 AND attempt = $4', [
      pgid,
      taskId,
      stage,
      attempt,
    ]);
  }

  async createSession(s: { id: string; pid: number; host: string; at: number }): Promise<SessionRecord> {
    const rows = await this.withRetry('creating the session', async (isRetry) => {
      // A retry may find the row its first try inserted: the id is ours (a fresh UUID), so that row is this session.
      const conflict = isRetry ? 'ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id' : '';
      const result = await this.pool.query<SessionRow>(
        `INSERT INTO sessions (id, pid, host, started_at, last_heartbeat_at, status) VALUES ($1, $2, $3, $4, $4, 'active') ${conflict} RETURNING *`,
        [s.id, s.pid, s.host, s.at],
      );
      return result.rows;
    });
    return toSession(rows[0]);
  }

  async heartbeatSession(id: string, now: number, leaseMs: number): Promise<void> {
    // A session already marked stale or crashed keeps no leases alive: others may be resuming its tasks.
    await this.query(
      'renewing the session',
      `WITH renewed AS (
         UPDATE sessions SET last_heartbeat_at = $2 WHERE id = $1 AND status = 'active' RETURNING id)
       UPDATE tasks SET lease_expires_at = $3 WHERE lease_owner IN (SELECT id FROM renewed)`,
      [id, now, now + leaseMs],
    );
  }

  async endSession(id: string, status: 'stopped' | 'crashed' | 'stale', at: number): Promise<void> {
    // An ended session's leases are over too: its tasks are resumable, and no lease outlives its holder.
    await this.query(
      'ending the session',
      `WITH ended AS (UPDATE sessions SET status = $1, ended_at = $2 WHERE id = $3 AND status IN ('active', 'stale') RETURNING id)
       UPDATE tasks SET lease_expires_at = $2 WHERE lease_owner IN (SELECT id FROM ended) AND lease_expires_at > $2`,
      [
      status,
      at,
      id,
    ]);
  }

  async listSessions(filter: { status?: SessionRecord['status'] } = {}): Promise<SessionRecord[]> {
    const rows = filter.status
      ? await this.query<SessionRow>('listing sessions', 'SELECT * FROM sessions WHERE status = $1 ORDER BY started_at DESC', [filter.status])
      : await this.query<SessionRow>('listing sessions', 'SELECT * FROM sessions ORDER BY started_at DESC');
    return rows.map(toSession);
  }

  /** Counts other processes' commits, heard on the schema's notification channel (see postgresListener.ts). */
  async changeMarker(): Promise<number> {
    return this.listener.marker();
  }

  /** Hears the schema's NOTIFY from other processes' commits as they arrive. */
  async watchChanges(onChange: () => void): Promise<() => void> {
    await this.listener.marker(); // starts listening
    return this.listener.onChange(onChange);
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    await this.listener.close();
    await this.pool.end();
  }
}
