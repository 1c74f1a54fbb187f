/** Opens the store the config names. */
import path from 'node:path';
import type { Config } from '../config.js';
import { ConfigError } from '../errors.js';
import type { Store } from './store.js';

export function sqlitePath(config: Config): string {
  return config.store.kind === 'sqlite' && config.store.path
    ? path.resolve(config.baseDir, config.store.path)
    : path.join(config.dataDir, 'cairn.db');
}

/** Opens (and migrates) the configured database. Creates the data directory and file if missing. */
export async function openStore(config: Config): Promise<Store> {
  if (config.store.kind === 'postgres') {
    throw new ConfigError(
      'store.kind "postgres" is not available in this build of cairn; use the default SQLite store (remove "store" or set {"kind": "sqlite"})',
    );
  }
  const { openSqliteStore } = await import('./sqlite.js');
  return openSqliteStore(sqlitePath(config), { durability: config.durability });
}
