/**
 * Moving a SQLite database up to PostgreSQL (`cairn migrate-store`): every row of the tables both
 * backends have, copied as stored (ids, seqs, versions, lease tokens and JSON text unchanged) in one
 * PostgreSQL transaction, then verified through the Store interface of each side: row counts per
 * table, and for every task a sha256 of its history and of its detail (what `history --json` and
 * `show --json` print). Rows are copied rather than replayed through createTask/commitTransitions so
 * that nothing is renumbered or re-timed; the verification reads both sides the way the CLI does.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { historyJson, taskDetailJson } from '../taskJson.js';
import { StoreError } from '../errors.js';
import type { OnProgress } from '../progressUpdate.js';
import type { PostgresStore } from '../store/postgres.js';
import type { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';

/** A table both backends have, its columns with their PostgreSQL types, and its identity column if any. */
interface TableSpec {
  name: string;
  columns: [string, string][];
  identity?: string;
  order: string;
}

/** In dependency order: a row's references are copied before it. */
export const COPIED_TABLES: TableSpec[] = [
  {
    name: 'tasks',
    identity: 'id',
    order: 'id',
    columns: [
      ['id', 'BIGINT'], ['request', 'TEXT'], ['priority', 'TEXT'], ['priority_rank', 'INTEGER'], ['tags', 'TEXT'], ['state', 'TEXT'],
      ['status', 'TEXT'], ['snapshot', 'TEXT'], ['version', 'INTEGER'], ['run_stage', 'TEXT'], ['run_attempt', 'INTEGER'],
      ['run_after', 'BIGINT'], ['lease_owner', 'TEXT'], ['lease_expires_at', 'BIGINT'], ['lease_token', 'BIGINT'],
      ['created_at', 'BIGINT'], ['updated_at', 'BIGINT'],
    ],
  },
  { name: 'task_dependencies', order: 'task_id, depends_on', columns: [['task_id', 'BIGINT'], ['depends_on', 'BIGINT']] },
  {
    name: 'transitions',
    order: 'task_id, seq',
    columns: [
      ['task_id', 'BIGINT'], ['seq', 'INTEGER'], ['from_state', 'TEXT'], ['to_state', 'TEXT'], ['event_type', 'TEXT'], ['stage', 'TEXT'],
      ['attempt', 'INTEGER'], ['event', 'TEXT'], ['actor', 'TEXT'], ['at', 'BIGINT'],
    ],
  },
  {
    name: 'checkpoints',
    identity: 'id',
    order: 'id',
    columns: [['id', 'BIGINT'], ['task_id', 'BIGINT'], ['name', 'TEXT'], ['seq', 'INTEGER'], ['state', 'TEXT'], ['snapshot', 'TEXT'], ['at', 'BIGINT']],
  },
  {
    name: 'stage_runs',
    order: 'task_id, stage, attempt',
    columns: [
      ['task_id', 'BIGINT'], ['stage', 'TEXT'], ['attempt', 'INTEGER'], ['run_id', 'TEXT'], ['session_id', 'TEXT'], ['started_at', 'BIGINT'],
      ['finished_at', 'BIGINT'], ['outcome', 'TEXT'], ['exit_code', 'INTEGER'], ['signal', 'TEXT'], ['pgid', 'INTEGER'],
    ],
  },
  {
    name: 'sessions',
    order: 'id',
    columns: [['id', 'TEXT'], ['pid', 'INTEGER'], ['host', 'TEXT'], ['started_at', 'BIGINT'], ['last_heartbeat_at', 'BIGINT'], ['status', 'TEXT'], ['ended_at', 'BIGINT']],
  },
  {
    name: 'notes',
    identity: 'id',
    order: 'id',
    columns: [
      ['id', 'BIGINT'], ['task_id', 'BIGINT'], ['scope', 'TEXT'], ['kind', 'TEXT'], ['text', 'TEXT'], ['rationale', 'TEXT'], ['impact', 'TEXT'],
      ['category', 'TEXT'], ['stage', 'TEXT'], ['attempt', 'INTEGER'], ['source', 'TEXT'], ['actor', 'TEXT'], ['at', 'BIGINT'],
    ],
  },
  { name: 'intake_keys', order: 'source, key', columns: [['source', 'TEXT'], ['key', 'TEXT'], ['task_ids', 'TEXT'], ['at', 'BIGINT']] },
  // The key-value state (`cairn state`): a PostgreSQL store keeps it in its schema too (postgres/0007).
  { name: 'kv_entries', order: 'ns, key', columns: [['ns', 'TEXT'], ['key', 'TEXT'], ['value', 'TEXT'], ['updated_at', 'TEXT']] },
  { name: 'kv_checkpoints', order: 'ns, name', columns: [['ns', 'TEXT'], ['name', 'TEXT'], ['at', 'TEXT'], ['entries', 'TEXT']] },
];

/** Tables with no task to checksum through: their rows are compared whole, by a sha256 of every row. */
const ROW_CHECKSUMMED = new Set(['kv_entries', 'kv_checkpoints']);

/**
 * Never copied: SQLite bookkeeping, and the heartbeat's locks (they name processes running on the
 * old database; a daemon on the new one takes its own).
 */
const INTERNAL_TABLES = new Set(['schema_migrations', 'sqlite_sequence', 'maintenance_locks']);
const BATCH_ROWS = 1000;

export interface SkippedTable {
  table: string;
  rows: number;
  reason: string;
}

export interface CopyReport {
  tables: Record<string, number>;
  tasksVerified: number;
  skipped: SkippedTable[];
}

const quote = (name: string) => `"${name}"`;

function sqliteTables(source: SqliteStore): string[] {
  return source.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[];
}

function sqliteCount(source: SqliteStore, table: string): number {
  return source.db.prepare(`SELECT count(*) FROM ${quote(table)}`).pluck().get() as number;
}

async function targetTables(target: PostgresStore): Promise<Set<string>> {
  const { rows } = await target.pool.query<{ name: string }>('SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1', [
    target.target.schema,
  ]);
  return new Set(rows.map((r) => r.name));
}

/**
 * Rows already in the target's copied tables, by table (only those that have any). Reads only.
 */
export async function countTargetRows(target: PostgresStore): Promise<Record<string, number>> {
  const present = await targetTables(target);
  const counts: Record<string, number> = {};
  for (const spec of COPIED_TABLES.filter((t) => present.has(t.name))) {
    const { rows } = await target.pool.query<{ n: number }>(`SELECT count(*)::integer AS n FROM ${quote(spec.name)}`);
    if (rows[0].n > 0) counts[spec.name] = rows[0].n;
  }
  return counts;
}

async function insertBatch(client: pg.PoolClient, spec: TableSpec, rows: Record<string, unknown>[]): Promise<void> {
  const names = spec.columns.map(([name]) => quote(name)).join(', ');
  const typed = spec.columns.map(([name, type]) => `${quote(name)} ${type}`).join(', ');
  await client.query(`INSERT INTO ${quote(spec.name)} (${names}) SELECT ${names} FROM jsonb_to_recordset($1::jsonb) AS x(${typed})`, [
    JSON.stringify(rows),
  ]);
}

/**
 * Copies every row of COPIED_TABLES from `source` into `target` in one transaction; with `replace`,
 * the target's rows in those tables are deleted first (in the same transaction). Identity sequences
 * are moved past the copied ids. Writes to the target only.
 */
export async function copyRows(
  source: SqliteStore,
  target: PostgresStore,
  options: { replace: boolean; onProgress?: OnProgress },
): Promise<{ tables: Record<string, number>; skipped: SkippedTable[] }> {
  const inSource = new Set(sqliteTables(source));
  const inTarget = await targetTables(target);
  const specs = COPIED_TABLES.filter((t) => inSource.has(t.name) && inTarget.has(t.name));
  const skipped: SkippedTable[] = [];
  for (const table of [...inSource].filter((t) => !INTERNAL_TABLES.has(t) && !specs.some((s) => s.name === t))) {
    const rows = sqliteCount(source, table);
    if (rows > 0) skipped.push({ table, rows, reason: 'PostgreSQL has no such table yet in this version of cairn' });
  }
  const tables: Record<string, number> = {};
  const client = await target.pool.connect();
  const onError = () => undefined;
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    if (options.replace) {
      await client.query(`TRUNCATE ${specs.map((s) => quote(s.name)).join(', ')} RESTART IDENTITY CASCADE`);
    }
    for (const spec of specs) {
      const select = source.db.prepare(`SELECT ${spec.columns.map(([name]) => quote(name)).join(', ')} FROM ${quote(spec.name)} ORDER BY ${spec.order}`);
      let batch: Record<string, unknown>[] = [];
      let copied = 0;
      const total = options.onProgress && sqliteCount(source, spec.name);
      for (const row of select.iterate() as Iterable<Record<string, unknown>>) {
        batch.push(row);
        if (batch.length === BATCH_ROWS) {
          await insertBatch(client, spec, batch);
          copied += batch.length;
          batch = [];
          options.onProgress?.({ step: `copying ${spec.name}`, done: copied, total, unit: 'rows' });
        }
      }
      if (batch.length) await insertBatch(client, spec, batch);
      tables[spec.name] = copied + batch.length;
      options.onProgress?.({ step: `copying ${spec.name}`, done: tables[spec.name], total, unit: 'rows' });
      if (spec.identity) {
        // The next id a daemon inserts must follow the copied ones.
        await client.query(
          `SELECT setval(pg_get_serial_sequence($1, $2), coalesce((SELECT max(${quote(spec.identity)}) FROM ${quote(spec.name)}), 0) + 1, false)`,
          [spec.name, spec.identity],
        );
      }
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.off('error', onError);
    client.release();
  }
  return { tables, skipped };
}

/** sha256 of what `history --json` and `show --json` print for a task, read through the Store interface. */
async function taskChecksums(store: Store, id: number): Promise<{ history: string; detail: string } | null> {
  const task = await store.getTask(id);
  if (!task) return null;
  const [history, checkpoints, runs, notes] = await Promise.all([
    store.getHistory(id),
    store.getCheckpoints(id),
    store.getStageRuns(id),
    store.listNotes({ taskId: id }),
  ]);
  const sha = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');
  return { history: sha(historyJson(history)), detail: sha(taskDetailJson(task, checkpoints, runs, notes)) };
}

/**
 * sha256 of every row of `spec`'s table, each as its column values, sorted in code-point order in
 * JavaScript (the PostgreSQL collation may order text differently from SQLite's byte order).
 */
function rowsChecksum(spec: TableSpec, rows: Record<string, unknown>[]): string {
  const lines = rows.map((row) => JSON.stringify(spec.columns.map(([name]) => row[name]))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

async function compareRows(source: SqliteStore, target: PostgresStore, spec: TableSpec): Promise<string | null> {
  const columns = spec.columns.map(([name]) => quote(name)).join(', ');
  const a = rowsChecksum(spec, source.db.prepare(`SELECT ${columns} FROM ${quote(spec.name)}`).all() as Record<string, unknown>[]);
  const b = rowsChecksum(spec, (await target.pool.query(`SELECT ${columns} FROM ${quote(spec.name)}`)).rows);
  return a === b ? null : `${spec.name}: the rows differ (sha256 ${a.slice(0, 12)}… vs ${b.slice(0, 12)}…)`;
}

/**
 * Compares the two sides: each copied table's row count, the rows of the tables no task checksum
 * covers (the key-value state), and every task's history and detail checksum.
 * Throws StoreError naming what differs. Reads only.
 */
export async function verifyCopy(
  source: SqliteStore,
  target: PostgresStore,
  tables: Record<string, number>,
  onProgress?: OnProgress,
): Promise<number> {
  const problems: string[] = [];
  for (const [table, copied] of Object.entries(tables)) {
    const inSource = sqliteCount(source, table);
    const { rows } = await target.pool.query<{ n: number }>(`SELECT count(*)::integer AS n FROM ${quote(table)}`);
    if (inSource !== copied || rows[0].n !== inSource) {
      problems.push(`${table}: ${inSource} rows in the source, ${rows[0].n} in the target`);
      continue;
    }
    const spec = COPIED_TABLES.find((t) => t.name === table);
    if (spec && ROW_CHECKSUMMED.has(table)) {
      const differs = await compareRows(source, target, spec);
      if (differs) problems.push(differs);
    }
  }
  const ids = (await source.listTasks()).map((t) => t.id);
  const PARALLEL = 8;
  for (let i = 0; i < ids.length; i += PARALLEL) {
    await Promise.all(
      ids.slice(i, i + PARALLEL).map(async (id) => {
        const [a, b] = await Promise.all([taskChecksums(source, id), taskChecksums(target, id)]);
        if (!b) problems.push(`task ${id} is missing from the target`);
        else if (a!.history !== b.history) problems.push(`task ${id}: history differs (sha256 ${a!.history.slice(0, 12)}… vs ${b.history.slice(0, 12)}…)`);
        else if (a!.detail !== b.detail) problems.push(`task ${id}: show differs (sha256 ${a!.detail.slice(0, 12)}… vs ${b.detail.slice(0, 12)}…)`);
      }),
    );
    onProgress?.({ step: 'verifying', done: Math.min(i + PARALLEL, ids.length), total: ids.length, unit: 'tasks' });
  }
  if (problems.length) {
    throw new StoreError(
      `the copy in ${target.location} does not match ${source.location}: ${problems.slice(0, 5).join('; ')}` +
        `${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}. Nothing else was changed; run migrate-store again with --force.`,
    );
  }
  return ids.length;
}
