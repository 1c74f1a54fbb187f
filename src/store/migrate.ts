/**
 * Forward-only, numbered migrations (`migrations/sqlite/NNNN_name.sql`), applied on open. Each one
 * runs in a BEGIN IMMEDIATE transaction that also records its number, so two processes opening a new
 * database together cannot both apply it. A database newer than this binary is refused.
 */
import type Database from 'better-sqlite3';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreError } from '../errors.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The migration files live in the package's src/store/migrations (package.json's `files` ships them
 * beside dist/). This code runs from src/ (tests), from dist/src/store/ (compiled) or from dist/src/
 * (the bundled `cairn` executable), so look upwards.
 */
function migrationsDir(backend: 'sqlite' | 'postgres'): string {
  const candidates: string[] = [];
  for (let dir = path.dirname(fileURLToPath(import.meta.url)), up = 0; up < 4; dir = path.dirname(dir), up++) {
    candidates.push(path.join(dir, 'migrations', backend), path.join(dir, 'src', 'store', 'migrations', backend));
  }
  const found = candidates.find((dir) => existsSync(dir));
  if (!found) throw new StoreError(`cannot find the ${backend} migrations (looked in ${candidates.join(', ')})`);
  return found;
}

/**
 * Lists the migration files in order. A file is read when its `sql` is first asked for: opening a
 * database that is up to date (every read verb) then reads only the directory.
 */
export function loadMigrations(backend: 'sqlite' | 'postgres'): Migration[] {
  const dir = migrationsDir(backend);
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      let sql: string | undefined;
      return {
        version: Number(file.slice(0, 4)),
        name: file.slice(5, -4),
        get sql() {
          return (sql ??= readFileSync(path.join(dir, file), 'utf8'));
        },
      };
    });
}

function appliedVersions(db: Database.Database): Set<number> {
  return new Set(db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]);
}

/** Brings the schema up to date. Writes to the database. */
export function applyMigrations(db: Database.Database, file: string): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const migrations = loadMigrations('sqlite');
  const latest = migrations.at(-1)?.version ?? 0;
  const applied = appliedVersions(db);
  const found = Math.max(0, ...applied);
  if (found > latest) {
    throw new StoreError(
      `${file} has schema version ${found}, newer than this cairn understands (${latest}); ` +
        'upgrade cairn, or restore a backup made by this version.',
    );
  }
  // Every missing version is applied, not only those above the highest: numbers are the order, not a watermark.
  for (const migration of migrations.filter((m) => !applied.has(m.version))) {
    db.transaction(() => {
      // Re-checked inside the write lock: another process may have applied it meanwhile.
      if (appliedVersions(db).has(migration.version)) return;
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        migration.version,
        migration.name,
        Date.now(),
      );
    }).immediate();
  }
}
