/**
 * Key-value state in the SQLite database that holds the tasks (tables from migration 0003), on the
 * store's own better-sqlite3 connection when there is one: a snapshot or backup of the database
 * carries the state with the tasks, and every write is a `BEGIN IMMEDIATE` transaction that waits on
 * the busy timeout like the store's own writes.
 */
import type Database from 'better-sqlite3';
import {
  assertKey,
  assertName,
  encodeValue,
  noCheckpoint,
  sortCheckpoints,
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


export class SqliteStateBackend implements StateBackend {
  readonly kind = 'sqlite' as const;
  private readonly stmt;

  /** `closeDb` is called by close(): pass it only when this backend opened the connection itself. */
  constructor(
    private readonly db: Database.Database,
    readonly location: string,
    private readonly closeDb: (() => Promise<void> | void) | null = null,
    private readonly now: () => number = Date.now,
  ) {
    const p = (sql: string) => db.prepare(sql);
    this.stmt = {
      get: p('SELECT key, value, updated_at FROM kv_entries WHERE ns = ? AND key = ?'),
      upsert: p(`INSERT INTO kv_entries (ns, key, value, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
      del: p('DELETE FROM kv_entries WHERE ns = ? AND key = ?'),
      list: p('SELECT key, value, updated_at FROM kv_entries WHERE ns = ?'),
      clear: p('DELETE FROM kv_entries WHERE ns = ?'),
      getCheckpoint: p('SELECT name, at, entries FROM kv_checkpoints WHERE ns = ? AND name = ?'),
      putCheckpoint: p(`INSERT INTO kv_checkpoints (ns, name, at, entries) VALUES (?, ?, ?, ?)
                        ON CONFLICT (ns, name) DO UPDATE SET at = excluded.at, entries = excluded.entries`),
      listCheckpoints: p('SELECT name, at, entries FROM kv_checkpoints WHERE ns = ?'),
      clearCheckpoints: p('DELETE FROM kv_checkpoints WHERE ns = ?'),
      namespaces: p('SELECT ns FROM kv_entries UNION SELECT ns FROM kv_checkpoints ORDER BY ns').pluck(),
    };
  }

  private entries(ns: string): StateEntry[] {
    return (this.stmt.list.all(ns) as EntryRow[]).map(entryFromRow).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private info(row: CheckpointRow): CheckpointInfo {
    return { name: row.name, at: row.at, keys: (JSON.parse(row.entries) as unknown[]).length };
  }

  async get(ns: string, key: string): Promise<StateEntry | null> {
    assertName('namespace', ns);
    assertKey(key);
    const row = this.stmt.get.get(ns, key) as EntryRow | undefined;
    return row ? entryFromRow(row) : null;
  }

  async set(ns: string, key: string, value: JsonValue): Promise<StateEntry> {
    assertName('namespace', ns);
    assertKey(key);
    const text = encodeValue(key, value);
    const updatedAt = stateTimestamp(this.now());
    this.stmt.upsert.run(ns, key, text, updatedAt);
    return { key, value: JSON.parse(text) as JsonValue, updatedAt };
  }

  async del(ns: string, key: string): Promise<boolean> {
    assertName('namespace', ns);
    assertKey(key);
    return this.stmt.del.run(ns, key).changes > 0;
  }

  async list(ns: string): Promise<StateEntry[]> {
    assertName('namespace', ns);
    return this.entries(ns);
  }

  async checkpoint(ns: string, name: string): Promise<CheckpointInfo> {
    assertName('namespace', ns);
    assertName('checkpoint', name);
    const at = stateTimestamp(this.now());
    // Read and write in one IMMEDIATE transaction: the copy is of one moment, not of a namespace mid-change.
    const keys = this.db
      .transaction(() => {
        const entries = this.entries(ns);
        this.stmt.putCheckpoint.run(ns, name, at, JSON.stringify(entries));
        return entries.length;
      })
      .immediate();
    return { name, at, keys };
  }

  async restore(ns: string, name: string): Promise<CheckpointInfo> {
    assertName('namespace', ns);
    assertName('checkpoint', name);
    return this.db
      .transaction(() => {
        const row = this.stmt.getCheckpoint.get(ns, name) as CheckpointRow | undefined;
        if (!row) throw noCheckpoint(ns, name);
        this.stmt.clear.run(ns);
        for (const e of JSON.parse(row.entries) as StateEntry[]) this.stmt.upsert.run(ns, e.key, JSON.stringify(e.value), e.updatedAt);
        return this.info(row);
      })
      .immediate();
  }

  async checkpoints(ns: string): Promise<CheckpointInfo[]> {
    assertName('namespace', ns);
    return sortCheckpoints((this.stmt.listCheckpoints.all(ns) as CheckpointRow[]).map((row) => this.info(row)));
  }

  async namespaces(): Promise<string[]> {
    return this.stmt.namespaces.all() as string[];
  }

  async exportNamespace(ns: string): Promise<NamespaceDump> {
    assertName('namespace', ns);
    return this.db.transaction(() => ({
      ns,
      entries: this.entries(ns),
      checkpoints: sortCheckpoints(
        (this.stmt.listCheckpoints.all(ns) as CheckpointRow[]).map((row) => ({
          name: row.name,
          at: row.at,
          entries: JSON.parse(row.entries) as StateEntry[],
        })),
      ),
    }))();
  }

  async importNamespace(dump: NamespaceDump): Promise<void> {
    assertName('namespace', dump.ns);
    this.db
      .transaction(() => {
        this.stmt.clear.run(dump.ns);
        this.stmt.clearCheckpoints.run(dump.ns);
        for (const e of dump.entries) this.stmt.upsert.run(dump.ns, e.key, encodeValue(e.key, e.value), e.updatedAt);
        for (const c of dump.checkpoints) {
          assertName('checkpoint', c.name);
          this.stmt.putCheckpoint.run(dump.ns, c.name, c.at, JSON.stringify(c.entries));
        }
      })
      .immediate();
  }

  async close(): Promise<void> {
    await this.closeDb?.();
  }
}
