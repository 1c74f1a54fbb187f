/**
 * Where snapshots, archives and backups live, and the one check every SQLite-only feature makes first:
 * with PostgreSQL the data is not a file, so snapshots, restore and retention are pg_dump's job.
 */
import type Database from 'better-sqlite3';
import path from 'node:path';
import type { Config } from '../config.js';
import { ConfigError } from '../errors.js';
import { sqlitePath } from '../store/openStore.js';
import type { Store } from '../store/store.js';

export interface Locations {
  /** The live database file. */
  dbFile: string;
  /** `state/snapshots/`: the snapshots retention keeps, each `NAME.db` with its record `NAME.json`. */
  snapshotsDir: string;
  /** `state/archive/`: snapshots retention moved out, and the monthly `history-YYYY-MM.db` archives. */
  archiveDir: string;
  /** `state/backups/`: where `cairn backup` writes when given no path. */
  backupsDir: string;
}

export function locationsOf(config: Config): Locations {
  return {
    dbFile: sqlitePath(config),
    snapshotsDir: path.join(config.dataDir, 'snapshots'),
    archiveDir: path.join(config.dataDir, 'archive'),
    backupsDir: path.join(config.dataDir, 'backups'),
  };
}

/** Throws ConfigError saying plainly that `feature` needs the SQLite store, and what to use instead. Pure. */
export function requireSqlite(config: Config, feature: string): void {
  if (config.store.kind === 'sqlite') return;
  throw new ConfigError(
    `${feature} is a SQLite feature, and this cairn uses PostgreSQL (store.kind "postgres"). ` +
      'Back PostgreSQL up with its own tools: `cairn backup PATH` runs pg_dump, and pg_restore brings a dump back.',
  );
}

/** The better-sqlite3 connection behind a SQLite store, or null for any other backend. */
export function sqliteDbOf(store: Store): Database.Database | null {
  const connection = store.connection();
  return connection.kind === 'sqlite' ? connection.db : null;
}
