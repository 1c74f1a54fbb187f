/** Opens the store the config names. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { StoreError } from '../errors.js';
import type { Store } from './store.js';

export function sqlitePath(config: Config): string {
  return config.store.kind === 'sqlite' && config.store.path
    ? path.resolve(config.baseDir, config.store.path)
    : path.join(config.dataDir, 'cairn.db');
}

export interface OpenStoreOptions {
  /**
   * SQLite: check the files before use (the -wal ends on a whole frame, PRAGMA quick_check). A daemon
   * about to run for days can afford it; read verbs skip it and rely on SQLite's own SQLITE_CORRUPT.
   */
  verify?: boolean;
  /**
   * SQLite: refuse, rather than create, a database whose directory does not exist. Read verbs set it:
   * a mistyped --data-dir is then reported instead of leaving an empty cairn.db behind.
   */
  mustExist?: boolean;
}

/**
 * Opens (and migrates) the configured database. SQLite: creates the data directory and file if missing
 * (unless `mustExist`);
 * a damaged file is refused with a message naming the newest good snapshot to restore.
 * PostgreSQL: connects and creates the schema if missing; pg is loaded only then.
 */
export async function openStore(config: Config, options: OpenStoreOptions = {}): Promise<Store> {
  if (config.store.kind === 'postgres') {
    const { openPostgresStore } = await import('./postgres.js');
    return openPostgresStore(config.store.url, { schema: config.store.schema });
  }
  const { ensurePrivateDir, openSqliteStore } = await import('./sqlite.js');
  const file = sqlitePath(config);
  if (options.mustExist && !existsSync(path.dirname(file))) {
    throw new StoreError(
      `the data directory ${path.dirname(file)} does not exist, so there is nothing to read; check --data-dir (or dataDir, store.path in the config), or create it with \`cairn submit\` or \`cairn start\``,
    );
  }
  const dir = path.dirname(file);
  ensurePrivateDir(dir, dir === path.resolve(config.dataDir) ? 'the data directory' : "the database's directory");
  try {
    // Before opening: opening replays the -wal, and the next write would overwrite a cut frame.
    // damage.js loads only for these checks or a failure: a read verb that opens fine never needs it.
    if (options.verify) await (await import('./damage.js')).assertWalUsable(file);
    const store = openSqliteStore(file, { durability: config.durability });
    if (options.verify) {
      const result = store.db.pragma('quick_check', { simple: true });
      if (result !== 'ok') {
        await store.close();
        const { DamagedFileError } = await import('./damage.js');
        throw new DamagedFileError(`${file} is damaged: quick_check says ${String(result).slice(0, 200)}`);
      }
    }
    return store;
  } catch (e) {
    throw await describeDamage(config, e);
  }
}

/** A damaged-file error reworded to name the snapshot to restore; any other error as it was. */
export async function describeDamage(config: Config, e: unknown): Promise<unknown> {
  if (config.store.kind !== 'sqlite') return e;
  const damage = await import('./damage.js');
  const file = sqlitePath(config);
  if (!damage.isDamage(e) || !damage.hasSqliteMagic(file)) return e;
  return damage.damagedDatabaseError(file, e, path.join(config.dataDir, 'snapshots'));
}
