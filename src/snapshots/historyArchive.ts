/**
 * History that does not grow without bound (`history.keepDays`): tasks completed or cancelled longer
 * ago than that move, with every row that belongs to them (transitions, checkpoints, stage runs,
 * dependencies, notes, and whatever later migrations add with a `task_id`), into a monthly archive
 * database `state/archive/history-YYYY-MM.db` with the same schema. Nothing is deleted: a task leaves
 * the live database only after its copy is committed to the archive and read back identical, and a
 * crash in between leaves it in both places until the next run finishes the move (the copy there is
 * replaced, never doubled). `cairn show/history --archived` read it back.
 */
import Database from '../store/betterSqlite3.js';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { loadMigrations } from '../store/migrate.js';
import { ensurePrivateDir, openSqliteStore, SqliteStore } from '../store/sqlite.js';

const DAY_MS = 86_400_000;
/** Our own bookkeeping, which stays in the live database. */
const NOT_TASK_OWNED = new Set(['tasks', 'archived_tasks', 'sqlite_sequence']);

export interface ArchiveResult {
  archived: number[];
  /** Old tasks kept because a task still live depends on them. */
  held: number[];
  files: string[];
}

interface OwnedTable {
  name: string;
  owner: string;
  /** Other columns referring to tasks (task_dependencies.depends_on): a live task must not lose what it refers to. */
  refs: string[];
}

type Row = Record<string, unknown>;

/** `history-2026-11.db`: the month (UTC) the task finished in. Pure. */
export function archiveFileName(finishedAt: number): string {
  return `history-${new Date(finishedAt).toISOString().slice(0, 7)}.db`;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/** Every table with rows that belong to a task: a `task_id` column, or a foreign key to tasks. Reads the schema. */
function ownedTables(db: Database.Database): OwnedTable[] {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all() as string[];
  const owned: OwnedTable[] = [];
  for (const name of tables) {
    if (NOT_TASK_OWNED.has(name)) continue;
    const columns = (db.pragma(`table_info(${quote(name)})`) as { name: string }[]).map((c) => c.name);
    const fkColumns = (db.pragma(`foreign_key_list(${quote(name)})`) as { table: string; from: string }[])
      .filter((fk) => fk.table === 'tasks')
      .map((fk) => fk.from);
    const owner = columns.includes('task_id') ? 'task_id' : fkColumns[0];
    if (!owner) continue;
    owned.push({ name, owner, refs: fkColumns.filter((c) => c !== owner) });
  }
  return owned;
}

/** Drops from `ids` every task that a row owned by a task staying live refers to, until none does. */
function withoutReferencedByLive(db: Database.Database, tables: OwnedTable[], ids: Set<number>): number[] {
  const held: number[] = [];
  for (let changed = true; changed && ids.size; ) {
    changed = false;
    const list = [...ids];
    for (const t of tables) {
      for (const ref of t.refs) {
        const sql = `SELECT DISTINCT ${quote(ref)} FROM ${quote(t.name)} WHERE ${quote(ref)} IN (${placeholders(list.length)})
                     AND (${quote(t.owner)} IS NULL OR ${quote(t.owner)} NOT IN (${placeholders(list.length)}))`;
        for (const id of db.prepare(sql).pluck().all(...list, ...list) as number[]) {
          if (ids.delete(id)) {
            held.push(id);
            changed = true;
          }
        }
      }
    }
  }
  return held;
}

function readRows(db: Database.Database, tables: OwnedTable[], ids: number[]): Map<string, Row[]> {
  const rows = new Map<string, Row[]>();
  const marks = placeholders(ids.length);
  rows.set('tasks', db.prepare(`SELECT * FROM tasks WHERE id IN (${marks}) ORDER BY id`).all(...ids) as Row[]);
  for (const t of tables) {
    rows.set(t.name, db.prepare(`SELECT * FROM ${quote(t.name)} WHERE ${quote(t.owner)} IN (${marks})`).all(...ids) as Row[]);
  }
  return rows;
}

/** A comparable digest of rows: the same rows in any order give the same string. Pure. */
function digest(rows: Map<string, Row[]>): string {
  return JSON.stringify([...rows.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, list]) => [name, list.map((r) => JSON.stringify(r)).sort()]));
}

function deleteRows(db: Database.Database, tables: OwnedTable[], ids: number[]): void {
  const marks = placeholders(ids.length);
  for (const t of tables) db.prepare(`DELETE FROM ${quote(t.name)} WHERE ${quote(t.owner)} IN (${marks})`).run(...ids);
  db.prepare(`DELETE FROM tasks WHERE id IN (${marks})`).run(...ids);
}

/**
 * Copies the rows into the archive database (replacing any earlier copy of these tasks) and reads them
 * back; throws unless the archive now holds exactly what the live database holds.
 */
function copyToArchive(file: string, tables: OwnedTable[], ids: number[], rows: Map<string, Row[]>): void {
  const archive = openSqliteStore(file);
  try {
    // Archived tasks may refer to tasks archived in another month's file.
    archive.db.pragma('foreign_keys = OFF');
    const archiveTables = ownedTables(archive.db).filter((t) => rows.has(t.name));
    const inserts = new Map<string, Database.Statement>();
    archive.db
      .transaction(() => {
        deleteRows(archive.db, archiveTables, ids);
        for (const [table, list] of rows) {
          for (const row of list) {
            const columns = Object.keys(row);
            const sql = `INSERT INTO ${quote(table)} (${columns.map(quote).join(', ')}) VALUES (${placeholders(columns.length)})`;
            if (!inserts.has(sql)) inserts.set(sql, archive.db.prepare(sql));
            inserts.get(sql)!.run(...columns.map((c) => row[c]));
          }
        }
      })
      .immediate();
    const back = readRows(archive.db, tables.filter((t) => archiveTables.some((a) => a.name === t.name)), ids);
    if (digest(back) !== digest(rows)) throw new Error(`the copy in ${file} does not read back identical; the tasks stay in the live database`);
  } finally {
    closeArchive(archive);
  }
}

/**
 * Leaves an archive as one self-contained file (rollback journal, no -wal/-shm), so readers open it
 * read-only without writing anything.
 */
function closeArchive(archive: SqliteStore): void {
  try {
    archive.db.pragma('journal_mode = DELETE');
  } finally {
    archive.db.close();
  }
}

/**
 * Opens an archive for reading: read-only when its schema is this binary's; through the store (which
 * applies the migrations it lacks) when an older cairn wrote it.
 */
export function openArchive(file: string): SqliteStore {
  const latest = loadMigrations('sqlite').at(-1)?.version ?? 0;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  const version = db.prepare('SELECT coalesce(max(version), 0) FROM schema_migrations').pluck().get() as number;
  if (version === latest) return new SqliteStore(db, file);
  db.close();
  return openSqliteStore(file);
}

/**
 * Moves up to `limit` tasks that finished (completed or cancelled) before `now - keepDays` into their
 * monthly archives. Writes the archive files (0600 in a 0700 directory) and the live database.
 */
export function archiveOldTasks(db: Database.Database, archiveDir: string, now: number, keepDays: number, limit = 1000): ArchiveResult {
  const result: ArchiveResult = { archived: [], held: [], files: [] };
  const tables = ownedTables(db);
  const page = db.prepare(
    `SELECT id, version, updated_at FROM tasks WHERE status IN ('completed', 'cancelled') AND updated_at < ? AND id > ? ORDER BY id LIMIT ?`,
  );
  // Page through the old tasks, so that held ones (a live task depends on them) never block those after them.
  const chosen: { id: number; version: number; updated_at: number }[] = [];
  for (let cursor = 0; chosen.length < limit; ) {
    const candidates = page.all(now - keepDays * DAY_MS, cursor, limit) as typeof chosen;
    if (!candidates.length) break;
    cursor = candidates.at(-1)!.id;
    const ids = new Set(candidates.map((c) => c.id));
    result.held.push(...withoutReferencedByLive(db, tables, ids));
    chosen.push(...candidates.filter((c) => ids.has(c.id)).slice(0, limit - chosen.length));
  }
  if (!chosen.length) return result;
  const byFile = new Map<string, typeof chosen>();
  for (const c of chosen) {
    const file = archiveFileName(c.updated_at);
    byFile.set(file, [...(byFile.get(file) ?? []), c]);
  }
  ensurePrivateDir(archiveDir);
  // Every copy first, each read back; then one live transaction removes them all, so that a task and
  // one it depends on, archived into different months, leave together (the foreign keys hold throughout).
  for (const [file, group] of byFile) {
    const ids = group.map((c) => c.id);
    copyToArchive(path.join(archiveDir, file), tables, ids, readRows(db, tables, ids));
  }
  const changed = db
    .transaction(() => {
      const version = db.prepare('SELECT version FROM tasks WHERE id = ?').pluck();
      const moved = chosen.filter((c) => version.get(c.id) === c.version);
      // A task that changed since it was copied (rewound, retried) stays live, and so does everything
      // in this batch, which may refer to it; the next run starts over.
      if (moved.length !== chosen.length) return chosen.filter((c) => !moved.includes(c));
      const index = db.prepare(
        `INSERT INTO archived_tasks (task_id, archive, status, created_at, updated_at, archived_at)
         SELECT id, ?, status, created_at, updated_at, ? FROM tasks WHERE id = ?
         ON CONFLICT (task_id) DO UPDATE SET archive = excluded.archive, archived_at = excluded.archived_at`,
      );
      for (const c of chosen) index.run(archiveFileName(c.updated_at), now, c.id);
      deleteRows(db, tables, chosen.map((c) => c.id));
      return [];
    })
    .immediate();
  if (changed.length) {
    for (const [file, group] of byFile) {
      const stale = group.filter((c) => changed.includes(c)).map((c) => c.id);
      if (stale.length) dropFromArchive(path.join(archiveDir, file), stale);
    }
    return result;
  }
  result.archived = chosen.map((c) => c.id);
  result.files = [...byFile.keys()];
  return result;
}

/** Removes copies of tasks that turned out to stay live, so no task is ever in two places for long. */
function dropFromArchive(file: string, ids: number[]): void {
  const archive = openSqliteStore(file);
  try {
    archive.db.pragma('foreign_keys = OFF');
    archive.db.transaction(() => deleteRows(archive.db, ownedTables(archive.db), ids)).immediate();
  } finally {
    closeArchive(archive);
  }
}

/**
 * The archive file holding task `id`, or null: the index the live database keeps, or (when a restore
 * or a copied directory lost the index) the first `history-*.db` holding it, newest month first.
 */
export function findArchivedTaskFile(db: Database.Database | null, archiveDir: string, id: number): string | null {
  const indexed = db?.prepare('SELECT archive FROM archived_tasks WHERE task_id = ?').pluck().get(id) as string | undefined;
  if (indexed && existsSync(path.join(archiveDir, indexed))) return path.join(archiveDir, indexed);
  if (!existsSync(archiveDir)) return null;
  const files = readdirSync(archiveDir)
    .filter((f) => /^history-\d{4}-\d{2}\.db$/.test(f))
    .sort()
    .reverse();
  for (const f of files) if (holdsTask(path.join(archiveDir, f), id)) return path.join(archiveDir, f);
  return null;
}

function holdsTask(file: string, id: number): boolean {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT 1 FROM tasks WHERE id = ?').get(id) !== undefined;
  } finally {
    db.close();
  }
}
