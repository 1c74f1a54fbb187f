/** Opens the store the config names. */
import path from 'node:path';
import type { Config } from '../config.js';
import type { Store } from './store.js';

export function sqlitePath(config: Config): string {
  return config.store.kind === 'sqlite' && config.store.path
    ? path.resolve(config.baseDir, config.store.path)
    : path.join(config.dataDir, 'cairn.db');
}

/**
 * Opens (and migrates) the configured database. SQLite: creates the data directory and file if missing.
 * PostgreSQL: connects and creates the schema if missing; pg is loaded only then.
 */
export async function openStore(config: Config): Promise<Store> {
  if (config.store.kind === 'postgres') {
    const { openPostgresStore } = await import('./postgres.js');
    return openPostgresStore(config.store.url, { schema: config.store.schema });
  }
  const { openSqliteStore } = await import('./sqlite.js');
  return openSqliteStore(sqlitePath(config), { durability: config.durability });
}
