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

/** The migration files live in src/; compiled code runs from dist/src/, so look in both places. */
function migrationsDir(backend: 'sqlite' | 'postgres'): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    path.join(here, 'migrations', backend),
    path.resolve(here, '..', '..', '..', 'src', 'store', 'migrations', backend),
  ];
  const found = candidates.find((dir) => existsSync(dir));
  if (!found) throw new StoreError(`cannot find the ${backend} migrations (looked in ${candidates.join(', ')})`);
  return found;
}

/** Reads the migration files in order. Reads files; no other side effects. */
export function loadMigrations(backend: 'sqlite' | 'postgres'): Migration[] {
  const dir = migrationsDir(backend);
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.slice(5, -4),
      sql: readFileSync(path.join(dir, file), 'utf8'),
    }));
}

function currentVersion(db: Database.Database): number {
  return (db.prepare('SELECT coalesce(max(version), 0) FROM schema_migrations').pluck().get() as number) ?? 0;
}

/** Brings the schema up to date. Writes to the database. */
export function applyMigrations(db: Database.Database, file: string): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const migrations = loadMigrations('sqlite');
  const latest = migrations.at(-1)?.version ?? 0;
  const found = currentVersion(db);
  if (found > latest) {
    throw new StoreError(
      `${file} has schema version ${found}, newer than this cairn understands (${latest}); ` +
        'upgrade cairn, or restore a backup made by this version.',
    );
  }
  if (found === latest) return;
  for (const migration of migrations) {
    db.transaction(() => {
      // Re-checked inside the write lock: another process may have applied it meanwhile.
      if (currentVersion(db) >= migration.version) return;
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        migration.version,
        migration.name,
        Date.now(),
      );
    }).immediate();
  }
}
