/**
 * Where the PostgreSQL bench runs: CAIRN_BENCH_DATABASE_URL (default the local test server), and fresh
 * schemas and databases named after this process, dropped when the run ends (even when it fails).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const BENCH_PG_URL = process.env.CAIRN_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const schemas: string[] = [];
const databases: string[] = [];

/** Runs one statement on a connection of its own, in `database` when given. */
export async function adminQuery<R extends pg.QueryResultRow = any>(sql: string, params: unknown[] = [], database?: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: database ? databaseUrl(database) : BENCH_PG_URL });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

function freshName(label: string): string {
  return `cairn_bench_${process.pid}_${label}_${randomBytes(3).toString('hex')}`.slice(0, 63);
}

/** A schema name nobody uses yet (not created: cairn and graphile-worker create their own). */
export function newBenchSchema(label: string): string {
  const schema = freshName(label);
  schemas.push(schema);
  return schema;
}

/** Creates a database of its own on the same server (DBOS keeps its system tables in one). */
export async function newBenchDatabase(label: string): Promise<string> {
  const database = freshName(label);
  await adminQuery(`CREATE DATABASE "${database}"`);
  databases.push(database);
  return database;
}

export function databaseUrl(database: string): string {
  const url = new URL(BENCH_PG_URL);
  url.pathname = `/${database}`;
  return url.href;
}

export function schemaUrl(schema: string): string {
  const url = new URL(BENCH_PG_URL);
  url.searchParams.set('schema', schema);
  return url.href;
}

/** Drops everything this run created; FORCE ends connections a peer left open. */
export async function dropBenchObjects(): Promise<void> {
  for (const schema of schemas.splice(0)) await adminQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  for (const database of databases.splice(0)) await adminQuery(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
}

/** Fails early, naming the URL, when the server cannot be reached: the rest would fail less clearly. */
export async function checkServer(): Promise<string> {
  try {
    const [row] = await adminQuery<{ server_version: string }>('SHOW server_version');
    return row.server_version;
  } catch (e) {
    const shown = BENCH_PG_URL.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
    throw new Error(`--store postgres: cannot reach PostgreSQL at ${shown} (${(e as Error).message}); start it or set CAIRN_BENCH_DATABASE_URL`);
  }
}

/** Events per second after dropping the first `warmFraction` of them as warm-up. Needs ≥ 2 events after it. */
export function rateAfterWarmup(timesMs: number[], warmFraction = 0.1): { perSecond: number; seconds: number; counted: number } {
  const sorted = [...timesMs].sort((a, b) => a - b);
  const first = Math.floor(sorted.length * warmFraction);
  const counted = sorted.length - 1 - first;
  const seconds = (sorted.at(-1)! - sorted[first]) / 1000;
  return { perSecond: counted / seconds, seconds, counted };
}
