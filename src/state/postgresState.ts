/**
 * Key-value state in the PostgreSQL schema that holds the tasks (tables from postgres migration 0007),
 * on the store's own pool when the daemon or CLI already has one open: several daemons sharing the
 * database share the state, and `migrate-store` carries a SQLite user's keys across. Values and times
 * are stored as the same text as on SQLite, so the two backends hold byte-equal rows.
 */
import type pg from 'pg';
import { CairnError, StateBackendError, toError } from '../errors.js';
import { inTransaction } from '../store/postgresConnection.js';
import {
  assertKey,
  assertName,
  encodeValue,
  noCheckpoint,
  sortCheckpoints,
  sortEntries,
  stateTimestamp,
  type CheckpointInfo,
  type JsonValue,
  type NamespaceDump,
  type StateBackend,
  type StateEntry,
  entryFromRow,
  type CheckpointRow,
  type EntryRow,
} from './stateBackend.js';


const UPSERT = `INSERT INTO kv_entries (ns, key, value, updated_at) VALUES ($1, $2, $3, $4)
                ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`;
const PUT_CHECKPOINT = `INSERT INTO kv_checkpoints (ns, name, at, entries) VALUES ($1, $2, $3, $4)
                        ON CONFLICT (ns, name) DO UPDATE SET at = excluded.at, entries = excluded.entries`;

type Queryable = pg.Pool | pg.PoolClient;

export class PostgresStateBackend implements StateBackend {
  readonly kind = 'postgres' as const;

  /** `closePool` is called by close(): pass it only when this backend opened the pool itself. */
  constructor(
    private readonly pool: pg.Pool,
    readonly location: string,
    private readonly closePool: (() => Promise<void>) | null = null,
    private readonly now: () => number = Date.now,
  ) {}

  /** Runs `fn`, turning a database failure into a StateBackendError that names the schema. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof CairnError) throw e;
      throw new StateBackendError(
        `PostgreSQL at ${this.location} failed to ${what} (${toError(e).message}); check that the server is up and reachable, then try again`,
        { cause: e },
      );
    }
  }

  /** One transaction on one pooled connection, for writes that replace a whole namespace. */
  private transaction<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.call(what, () => inTransaction(this.pool, fn));
  }

  private async entries(db: Queryable, ns: string): Promise<StateEntry[]> {
    const { rows } = await db.query<EntryRow>('SELECT key, value, updated_at FROM kv_entries WHERE ns = $1', [ns]);
    // Sorted here, not by ORDER BY: the database's collation need not be code-point order.
    return sortEntries(rows.map(entryFromRow));
  }

  private async checkpointRows(db: Queryable, ns: string): Promise<CheckpointRow[]> {
    return (await db.query<CheckpointRow>('SELECT name, at, entries FROM kv_checkpoints WHERE ns = $1', [ns])).rows;
  }

  private info(row: CheckpointRow): CheckpointInfo {
    return { name: row.name, at: row.at, keys: (JSON.parse(row.entries) as unknown[]).length };
  }

  async get(ns: string, key: string): Promise<StateEntry | null> {
    assertName('namespace', ns);
    assertKey(key);
    const { rows } = await this.call(`read key ${key} of namespace ${ns}`, () =>
      this.pool.query<EntryRow>('SELECT key, value, updated_at FROM kv_entries WHERE ns = $1 AND key = $2', [ns, key]),
    );
    return rows[0] ? entryFromRow(rows[0]) : null;
  }

  async set(ns: string, key: string, value: JsonValue): Promise<StateEntry> {
    assertName('namespace', ns);
    assertKey(key);
    const text = encodeValue(key, value);
    const updatedAt = stateTimestamp(this.now());
    await this.call(`set key ${key} of namespace ${ns}`, () => this.pool.query(UPSERT, [ns, key, text, updatedAt]));
    return { key, value: JSON.parse(text) as JsonValue, updatedAt };
  }

  async del(ns: string, key: string): Promise<boolean> {
    assertName('namespace', ns);
    assertKey(key);
    const result = await this.call(`delete key ${key} of namespace ${ns}`, () =>
      this.pool.query('DELETE FROM kv_entries WHERE ns = $1 AND key = $2', [ns, key]),
    );
    return (result.rowCount ?? 0) > 0;
  }

  async list(ns: string): Promise<StateEntry[]> {
    assertName('namespace', ns);
    return this.call(`list namespace ${ns}`, () => this.entries(this.pool, ns));
  }

  async checkpoint(ns: string, name: string): Promise<CheckpointInfo> {
    assertName('namespace', ns);
    assertName('checkpoint', name);
    const at = stateTimestamp(this.now());
    // One SELECT sees one moment, so the copy is never of a namespace mid-change.
    const keys = await this.call(`checkpoint namespace ${ns}`, async () => {
      const entries = await this.entries(this.pool, ns);
      await this.pool.query(PUT_CHECKPOINT, [ns, name, at, JSON.stringify(entries)]);
      return entries.length;
    });
    return { name, at, keys };
  }

  async restore(ns: string, name: string): Promise<CheckpointInfo> {
    assertName('namespace', ns);
    assertName('checkpoint', name);
    return this.transaction(`restore namespace ${ns} to checkpoint ${name}`, async (client) => {
      const { rows } = await client.query<CheckpointRow>('SELECT name, at, entries FROM kv_checkpoints WHERE ns = $1 AND name = $2', [ns, name]);
      if (!rows[0]) throw noCheckpoint(ns, name);
      await client.query('DELETE FROM kv_entries WHERE ns = $1', [ns]);
      await this.insertEntries(client, ns, JSON.parse(rows[0].entries) as StateEntry[]);
      return this.info(rows[0]);
    });
  }

  /** Inserts entries as they were stored (their times kept), in one statement. */
  private async insertEntries(client: pg.PoolClient, ns: string, entries: StateEntry[]): Promise<void> {
    if (!entries.length) return;
    const rows = entries.map((e) => ({ key: e.key, value: encodeValue(e.key, e.value), updated_at: e.updatedAt }));
    await client.query(
      `INSERT INTO kv_entries (ns, key, value, updated_at)
       SELECT $1, x.key, x.value, x.updated_at FROM jsonb_to_recordset($2::jsonb) AS x(key TEXT, value TEXT, updated_at TEXT)`,
      [ns, JSON.stringify(rows)],
    );
  }

  async checkpoints(ns: string): Promise<CheckpointInfo[]> {
    assertName('namespace', ns);
    const rows = await this.call(`list the checkpoints of namespace ${ns}`, () => this.checkpointRows(this.pool, ns));
    return sortCheckpoints(rows.map((row) => this.info(row)));
  }

  async namespaces(): Promise<string[]> {
    const { rows } = await this.call('list namespaces', () =>
      this.pool.query<{ ns: string }>('SELECT ns FROM kv_entries UNION SELECT ns FROM kv_checkpoints'),
    );
    return rows.map((r) => r.ns).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async exportNamespace(ns: string): Promise<NamespaceDump> {
    assertName('namespace', ns);
    // REPEATABLE READ: the keys and the checkpoints are read at the same moment.
    return this.transaction(`export namespace ${ns}`, async (client) => {
      await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const entries = await this.entries(client, ns);
      const checkpoints = (await this.checkpointRows(client, ns)).map((row) => ({
        name: row.name,
        at: row.at,
        entries: JSON.parse(row.entries) as StateEntry[],
      }));
      return { ns, entries, checkpoints: sortCheckpoints(checkpoints) };
    });
  }

  async importNamespace(dump: NamespaceDump): Promise<void> {
    assertName('namespace', dump.ns);
    for (const c of dump.checkpoints) assertName('checkpoint', c.name);
    await this.transaction(`import namespace ${dump.ns}`, async (client) => {
      await client.query('DELETE FROM kv_entries WHERE ns = $1', [dump.ns]);
      await client.query('DELETE FROM kv_checkpoints WHERE ns = $1', [dump.ns]);
      await this.insertEntries(client, dump.ns, dump.entries);
      for (const c of dump.checkpoints) await client.query(PUT_CHECKPOINT, [dump.ns, c.name, c.at, JSON.stringify(c.entries)]);
    });
  }

  async close(): Promise<void> {
    await this.closePool?.();
  }
}
