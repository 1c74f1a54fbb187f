/**
 * PostgreSQL for tests: every test run works in schemas of its own (named with the worker's pid) and
 * drops them afterwards; schemas left by a run that was killed are dropped by the next one, once their
 * pid is gone. Set CAIRN_TEST_DATABASE_URL to use another server (default: 127.0.0.1:5432, database test).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { isPidAlive } from '../../src/process/sessions.js';

export const PG_URL = process.env.CAIRN_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PREFIX = 'cairn_t';

/** The URL of `schema` on the test server, as --database / CAIRN_DATABASE_URL take it. */
export function schemaUrl(schema: string, params: Record<string, string> = {}): string {
  const url = new URL(PG_URL);
  url.searchParams.set('schema', schema);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.href;
}

/** Runs one statement on its own connection, in `schema` when given. */
export async function adminQuery<R extends pg.QueryResultRow = any>(sql: string, params: unknown[] = [], schema?: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: PG_URL, ...(schema ? { options: `-c search_path=${schema}` } : {}) });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

const created: string[] = [];
let sweptLeftovers = false;

/** A fresh schema name (not created: the store creates it); dropped by dropTestSchemas(). */
export async function newTestSchema(label = 's'): Promise<string> {
  if (!sweptLeftovers) {
    sweptLeftovers = true;
    const rows = await adminQuery<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname LIKE $1', [`${PREFIX}\\_%`]);
    for (const { nspname } of rows) {
      const pid = Number(nspname.split('_')[2]);
      if (Number.isInteger(pid) && pid > 0 && !isPidAlive(pid)) await adminQuery(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`);
    }
  }
  const schema = `${PREFIX}_${process.pid}_${label.replace(/[^a-z0-9]/g, '')}_${randomBytes(4).toString('hex')}`.slice(0, 63);
  created.push(schema);
  return schema;
}

/** Drops every schema this process made. Call in afterAll (it runs even when tests failed). */
export async function dropTestSchemas(): Promise<void> {
  for (const schema of created.splice(0)) await adminQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** Ends every connection whose application_name is `name` (pg_terminate_backend); returns how many. */
export async function terminateBackends(name: string): Promise<number> {
  const rows = await adminQuery<{ n: number }>(
    'SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()) x',
    [name],
  );
  return rows[0].n;
}
