/**
 * Reaching PostgreSQL: the URL (with an optional `?schema=`), the pool and its settings, which errors
 * mean "the server is gone" rather than "this statement is wrong", and the messages a user sees when it
 * cannot be reached. No SQL beyond the connection itself.
 */
import pg from 'pg';
import { redactUrl } from '../redactUrl.js';
import { ConfigError, StoreError, StoreUnavailableError, toError } from '../errors.js';

export interface PostgresTarget {
  /** The URL handed to pg, without cairn's own `schema` parameter. */
  connectionString: string;
  schema: string;
  host: string;
  port: number;
  database: string;
  user: string;
  /** For messages and `cairn status`: the URL without its password, plus the schema. */
  location: string;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Reads a postgres:// URL. `schema` (config `store.schema`) wins over a `?schema=` parameter; the
 * default is `public`. Throws ConfigError for a URL that is not PostgreSQL's. Pure (reads PG* env
 * defaults only to name the user and host in messages, as pg itself would use them).
 */
export function parsePostgresUrl(url: string, schema?: string, env: NodeJS.ProcessEnv = process.env): PostgresTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`"${redactUrl(url)}" is not a database URL; write it like postgres://user@host:5432/database`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new ConfigError(`the database URL must start with postgres:// (got ${parsed.protocol}//…)`);
  }
  const fromUrl = parsed.searchParams.get('schema');
  parsed.searchParams.delete('schema');
  const chosen = schema ?? fromUrl ?? 'public';
  if (!SCHEMA_NAME.test(chosen)) {
    throw new ConfigError(`schema "${chosen}" is not a lower-case PostgreSQL schema name (letters, digits, _), e.g. "cairn"`);
  }
  const host = decodeURIComponent(parsed.hostname) || parsed.searchParams.get('host') || env.PGHOST || 'localhost';
  const port = Number(parsed.port || parsed.searchParams.get('port') || env.PGPORT || 5432);
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || env.PGDATABASE || '';
  const user = decodeURIComponent(parsed.username) || env.PGUSER || env.USER || '';
  const shown = new URL(parsed.href);
  shown.password = '';
  return {
    connectionString: parsed.href,
    schema: chosen,
    host,
    port,
    database,
    user,
    location: `${shown.href} (schema ${chosen})`,
  };
}


/** Node's socket errors and PostgreSQL's "connection gone" SQLSTATEs: the server, not the statement. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  '57P01', // admin_shutdown: pg_terminate_backend, a fast shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up or shutting down
]);

/** Whether `e` says the connection or server went away (so the same call may work on a new connection). */
export function isConnectionError(e: unknown): boolean {
  const error = e as { code?: unknown; message?: unknown } | null;
  const code = typeof error?.code === 'string' ? error.code : '';
  if (CONNECTION_CODES.has(code) || code.startsWith('08')) return true;
  const message = typeof error?.message === 'string' ? error.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(
    message,
  );
}

/** The message for a server that cannot be reached or refuses us, naming host:port and what to check. */
export function describeConnectFailure(target: PostgresTarget, e: unknown): StoreError {
  const error = toError(e);
  const code = (error as { code?: string }).code ?? '';
  const where = `PostgreSQL at ${target.host}:${target.port}`;
  if (code === '28P01' || code === '28000') {
    return new StoreError(`${where} refused user "${target.user}" (${error.message}); check the user and password in the database URL.`, {
      cause: error,
    });
  }
  if (code === '3D000') {
    return new StoreError(
      `database "${target.database}" does not exist on ${where}; create it (createdb ${target.database}) or fix the database URL.`,
      { cause: error },
    );
  }
  if (code === '42501') {
    return new StoreError(`user "${target.user}" may not create schema ${target.schema} on ${where} (${error.message}); grant it or create the schema first.`, {
      cause: error,
    });
  }
  if (isConnectionError(error)) {
    return new StoreUnavailableError(
      `cannot reach ${where} (database "${target.database}"): ${code && !error.message.includes(code) ? `${code} ` : ''}${error.message}. ` +
        'Check that the server is running and reachable from here, and the URL given by --database, CAIRN_DATABASE_URL or store.url.',
      { cause: error },
    );
  }
  return new StoreError(`${where}: ${error.message}`, { cause: error });
}

const INT8_OID = 20;
const INT8_ARRAY_OID = 1016;
const TEXT_ARRAY_OID = 1009;

/**
 * BIGINT columns (ids, epoch milliseconds) as numbers, as better-sqlite3 gives them: all our values
 * are far below 2^53. Set per pool, not on pg's global type registry, so other pg users are unaffected.
 */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID) return (value: string) => Number(value);
    if (oid === INT8_ARRAY_OID) {
      // pg parses int8[] elements as strings; its text[] parser splits the same literal format.
      const parseArray = pg.types.getTypeParser(TEXT_ARRAY_OID as never, 'text') as (value: string) => (string | null)[];
      return (value: string) => parseArray(value).map((v) => (v === null ? null : Number(v)));
    }
    return pg.types.getTypeParser(oid as never, format ?? 'text');
  },
};

/** The settings every connection of a store gets: search_path on the schema, our type parsers. */
export function clientConfig(target: PostgresTarget): pg.ClientConfig {
  const url = new URL(target.connectionString);
  // pg lets the URL's parameters override the config object, so an `options` in the URL is merged here.
  const extra = url.searchParams.get('options');
  url.searchParams.delete('options');
  const options = [extra, `-c search_path=${target.schema}`].filter(Boolean).join(' ');
  const hasAppName = url.searchParams.has('application_name');
  return {
    connectionString: url.href,
    options,
    ...(hasAppName ? {} : { application_name: 'cairn' }),
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    types,
  };
}

/** A pool for the store. Its 'error' events (an idle connection cut) are absorbed: the pool drops that client. */
export function createPool(target: PostgresTarget, max = 10): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(target), max, idleTimeoutMillis: 30_000 });
  // Without a listener, an idle client cut by the server (pg_terminate_backend, a restart) would be an
  // unhandled 'error' event and end the process. The pool has already removed it; the next query connects anew.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Runs `fn` in one transaction on one pooled connection, for writes that need code between statements.
 * A connection cut meanwhile is dropped from the pool rather than handed to the next caller.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // While checked out, a cut connection would emit 'error' with nobody listening: the query fails instead.
  const onError = () => undefined;
  client.on('error', onError);
  let isBroken = false;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (e) {
    isBroken = isConnectionError(e);
    if (!isBroken) await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.off('error', onError);
    client.release(isBroken ? true : undefined);
  }
}
