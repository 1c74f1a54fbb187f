/**
 * Chooses and opens a key-value state backend: from the config's `state` key (`backend`, `dir`, `url`,
 * `prefix`), or from a `--from`/`--to` spec of `cairn state migrate` (`sqlite`, `sqlite:PATH`, `json`,
 * `json:DIR`, `redis`, `redis://host:port/db[?prefix=P]`). Backends are imported only when chosen, so
 * a JSON user never loads ioredis.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import { ConfigError, UsageError } from '../errors.js';
import { sqlitePath } from '../store/openStore.js';
import type { Store } from '../store/store.js';
import { redactUrl, type StateBackend } from './stateBackend.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_REDIS_PREFIX = 'cairn:';

export type StateSpec =
  | { kind: 'sqlite'; path: string }
  | { kind: 'json'; dir: string }
  | { kind: 'redis'; url: string; prefix: string };

/** Where the JSON backend keeps its files: `state.dir` (relative to the config file), else `<dataDir>/kv`. Pure. */
export function jsonStateDir(config: Config): string {
  return config.state.dir ? path.resolve(config.baseDir, config.state.dir) : path.join(config.dataDir, 'kv');
}

function configSqlitePath(config: Config): string {
  if (config.store.kind !== 'sqlite') {
    throw new ConfigError(
      `state.backend "sqlite" keeps state in the SQLite database, but store.kind is "${config.store.kind}"; ` +
        'set state.backend to "redis" (shared by several machines) or "json"',
    );
  }
  return sqlitePath(config);
}

/** The backend the config names. Pure (reads no files). */
export function stateSpecFromConfig(config: Config): StateSpec {
  switch (config.state.backend) {
    case 'sqlite':
      return { kind: 'sqlite', path: configSqlitePath(config) };
    case 'json':
      return { kind: 'json', dir: jsonStateDir(config) };
    case 'redis':
      return { kind: 'redis', url: config.state.url ?? DEFAULT_REDIS_URL, prefix: config.state.prefix ?? DEFAULT_REDIS_PREFIX };
  }
}

/**
 * Parses a `--from`/`--to` spec; a bare backend name means the one in the config. Relative paths are
 * resolved against `cwd`. Throws UsageError for anything else. Pure.
 */
export function parseStateSpec(text: string, config: Config, cwd = process.cwd()): StateSpec {
  const spec = text.trim();
  if (spec === 'sqlite') return { kind: 'sqlite', path: configSqlitePath(config) };
  if (spec === 'json') return { kind: 'json', dir: jsonStateDir(config) };
  if (spec === 'redis') return { kind: 'redis', url: config.state.url ?? DEFAULT_REDIS_URL, prefix: config.state.prefix ?? DEFAULT_REDIS_PREFIX };
  const colon = spec.indexOf(':');
  const kind = colon > 0 ? spec.slice(0, colon) : '';
  const rest = spec.slice(colon + 1);
  if (kind === 'sqlite' && rest) return { kind: 'sqlite', path: path.resolve(cwd, rest) };
  if (kind === 'json' && rest) return { kind: 'json', dir: path.resolve(cwd, rest) };
  if ((kind === 'redis' || kind === 'rediss') && rest.startsWith('//')) {
    let url: URL;
    try {
      url = new URL(spec);
    } catch {
      throw new UsageError(`"${text}" is not a Redis URL; write it like redis://127.0.0.1:6379/0`);
    }
    const prefix = url.searchParams.get('prefix') ?? config.state.prefix ?? DEFAULT_REDIS_PREFIX;
    url.searchParams.delete('prefix');
    return { kind: 'redis', url: url.toString().replace(/\?$/, ''), prefix };
  }
  throw new UsageError(
    `"${text}" is not a state backend; write sqlite, sqlite:PATH, json, json:DIR, redis or redis://HOST:PORT/DB[?prefix=P]`,
  );
}

/** A short name for messages: `json:/path`, `sqlite:/path/cairn.db`, `redis://host:6379 (prefix cairn:)`. Pure. */
export function describeStateSpec(spec: StateSpec): string {
  if (spec.kind === 'sqlite') return `sqlite:${spec.path}`;
  if (spec.kind === 'json') return `json:${spec.dir}`;
  return `${redactUrl(spec.url)} (prefix ${spec.prefix})`;
}

export interface OpenStateOptions {
  /** The open store: a SQLite spec on its file shares its connection. */
  store?: Store;
  durability?: 'full' | 'normal';
  /** The clock that stamps writes (tests inject one). */
  now?: () => number;
  /** JSON backend: how long to wait for another writer's lock (default 10 s). */
  lockTimeoutMs?: number;
}

function isSqliteStore(store: Store | undefined): store is Store & { db: import('better-sqlite3').Database } {
  return !!store && store.kind === 'sqlite' && 'db' in store;
}

/**
 * Opens the backend `spec` names. A SQLite spec on the same file as `store` shares its connection
 * (and then close() leaves it open); otherwise it opens (and migrates) the file. Redis connects.
 */
export async function openStateSpec(spec: StateSpec, options: OpenStateOptions = {}): Promise<StateBackend> {
  const now = options.now ?? Date.now;
  if (spec.kind === 'json') {
    const { JsonStateBackend } = await import('./jsonState.js');
    return new JsonStateBackend(spec.dir, now, options.lockTimeoutMs);
  }
  if (spec.kind === 'redis') {
    const { RedisStateBackend } = await import('./redisState.js');
    return RedisStateBackend.connect(spec.url, spec.prefix, now);
  }
  const { SqliteStateBackend } = await import('./sqliteState.js');
  const { store } = options;
  if (isSqliteStore(store) && path.resolve(store.location) === path.resolve(spec.path)) {
    return new SqliteStateBackend(store.db, spec.path, null, now);
  }
  const { openSqliteStore } = await import('../store/sqlite.js');
  const own = openSqliteStore(spec.path, { durability: options.durability });
  return new SqliteStateBackend(own.db, spec.path, () => own.close(), now);
}

/** Opens the backend `config.state` selects; see openStateSpec. */
export function openStateBackend(config: Config, store?: Store): Promise<StateBackend> {
  return openStateSpec(stateSpecFromConfig(config), { store, durability: config.durability });
}
