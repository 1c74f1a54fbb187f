/**
 * Chooses and opens a key-value state backend: from the config's `state` key (`backend`, `dir`, `url`,
 * `prefix`), or from a `--from`/`--to` spec of `cairn state migrate` (`sqlite`, `sqlite:PATH`,
 * `postgres`, `postgres://…[?schema=S]`, `json`, `json:DIR`, `redis`, `redis://host:port/db[?prefix=P]`).
 * Backends are imported only when chosen, so a JSON user never loads ioredis or pg.
 *
 * With no `state.backend`, the state lives where the tasks do: `sqlite` for a SQLite store, `postgres`
 * (the store's database and schema) for a PostgreSQL one. Every daemon on a shared database then sees
 * the same state, and a snapshot or `migrate-store` carries it with the tasks.
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
  /** `schema` (config `store.schema`) wins over a `?schema=` in the URL, as for the store. */
  | { kind: 'postgres'; url: string; schema?: string }
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
        'remove state.backend (the state then lives in the store\'s PostgreSQL schema) or set it to "postgres", "redis" or "json"',
    );
  }
  return sqlitePath(config);
}

/** `state.url` when given, else the store's own database and schema. Pure. */
function configPostgresSpec(config: Config): StateSpec {
  if (config.state.url) return { kind: 'postgres', url: config.state.url };
  if (config.store.kind === 'postgres') return { kind: 'postgres', url: config.store.url, schema: config.store.schema };
  throw new ConfigError(
    'state.backend "postgres" needs a database, but the store is SQLite; set state.url to a postgres:// URL ' +
      '(add ?schema=NAME for a schema other than public), or remove state.backend to keep state in the SQLite database',
  );
}

/** The backend in use: `state.backend`, else the store's kind. Pure. */
export function stateBackendOf(config: Config): NonNullable<Config['state']['backend']> {
  return config.state.backend ?? config.store.kind;
}

/** The backend the config names. Pure (reads no files). */
export function stateSpecFromConfig(config: Config): StateSpec {
  switch (stateBackendOf(config)) {
    case 'sqlite':
      return { kind: 'sqlite', path: configSqlitePath(config) };
    case 'postgres':
      return configPostgresSpec(config);
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
  if (spec === 'postgres') return configPostgresSpec(config);
  if (spec === 'redis') return { kind: 'redis', url: config.state.url ?? DEFAULT_REDIS_URL, prefix: config.state.prefix ?? DEFAULT_REDIS_PREFIX };
  const colon = spec.indexOf(':');
  const kind = colon > 0 ? spec.slice(0, colon) : '';
  const rest = spec.slice(colon + 1);
  if (kind === 'sqlite' && rest) return { kind: 'sqlite', path: path.resolve(cwd, rest) };
  if (kind === 'json' && rest) return { kind: 'json', dir: path.resolve(cwd, rest) };
  if ((kind === 'postgres' || kind === 'postgresql') && rest.startsWith('//')) return { kind: 'postgres', url: spec };
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
    `"${text}" is not a state backend; write sqlite, sqlite:PATH, postgres, postgres://HOST/DB[?schema=S], json, json:DIR, redis or redis://HOST:PORT/DB[?prefix=P]`,
  );
}

/** A short name for messages: `json:/path`, `sqlite:/path/cairn.db`, `redis://host:6379 (prefix cairn:)`. Pure. */
export function describeStateSpec(spec: StateSpec): string {
  if (spec.kind === 'sqlite') return `sqlite:${spec.path}`;
  if (spec.kind === 'json') return `json:${spec.dir}`;
  if (spec.kind === 'postgres') {
    let shown = spec.url;
    let fromUrl: string | null = null;
    try {
      const url = new URL(spec.url);
      fromUrl = url.searchParams.get('schema');
      url.searchParams.delete('schema');
      shown = url.href;
    } catch {
      // Not a URL: opening it says so; a message only needs a name.
    }
    return `${redactUrl(shown)} (schema ${spec.schema ?? fromUrl ?? 'public'})`;
  }
  return `${redactUrl(spec.url)} (prefix ${spec.prefix})`;
}

export interface OpenStateOptions {
  /** The open store: a SQLite spec on its file, or a PostgreSQL spec on its schema, shares its connection(s). */
  store?: Store;
  durability?: 'full' | 'normal';
  /** The clock that stamps writes (tests inject one). */
  now?: () => number;
  /** JSON backend: how long to wait for another writer's lock (default 10 s). */
  lockTimeoutMs?: number;
}

/**
 * Opens the backend `spec` names. A SQLite spec on the same file as `store` shares its connection,
 * a PostgreSQL spec on the same schema its pool (and then close() leaves them open); otherwise it
 * opens (and migrates) the file or schema. Redis connects.
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
  if (spec.kind === 'postgres') return openPostgresState(spec, options.store, now);
  const { SqliteStateBackend } = await import('./sqliteState.js');
  const shared = options.store?.connection();
  if (shared?.kind === 'sqlite' && path.resolve(shared.file) === path.resolve(spec.path)) {
    return new SqliteStateBackend(shared.db, spec.path, null, now);
  }
  const { openSqliteStore } = await import('../store/sqlite.js');
  const own = openSqliteStore(spec.path, { durability: options.durability });
  return new SqliteStateBackend(own.db, spec.path, () => own.close(), now);
}

/** PostgreSQL state on `store`'s pool when it is the same schema, else on a small pool of its own (migrated). */
async function openPostgresState(spec: Extract<StateSpec, { kind: 'postgres' }>, store: Store | undefined, now: () => number): Promise<StateBackend> {
  const { PostgresStateBackend } = await import('./postgresState.js');
  const { parsePostgresUrl } = await import('../store/postgresConnection.js');
  const wanted = parsePostgresUrl(spec.url, spec.schema);
  const shared = store?.connection();
  if (shared?.kind === 'postgres' && shared.target.connectionString === wanted.connectionString && shared.target.schema === wanted.schema) {
    return new PostgresStateBackend(shared.pool, shared.target.location, null, now);
  }
  const { openPostgresStore } = await import('../store/postgres.js');
  const own = await openPostgresStore(spec.url, { schema: spec.schema, poolSize: 2 });
  return new PostgresStateBackend(own.pool, own.location, () => own.close(), now);
}

/** Opens the backend `config.state` selects; see openStateSpec. */
export function openStateBackend(config: Config, store?: Store): Promise<StateBackend> {
  return openStateSpec(stateSpecFromConfig(config), { store, durability: config.durability });
}
