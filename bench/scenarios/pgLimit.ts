/**
 * The PostgreSQL limit on this machine: raw `pg`, the shape of one transition (insert a ~500-byte
 * history row, update the task row) written as a four-statement transaction (BEGIN, INSERT, UPDATE,
 * COMMIT: four round trips) and as one statement (a CTE: one round trip), from one client, and the
 * CTE from three clients at once. cairn's figures are read as ratios of these.
 */
import pg from 'pg';
import { nowMs } from '../stats.js';
import { BENCH_PG_URL, newBenchSchema } from './pgDatabase.js';

const PAYLOAD = JSON.stringify({ value: 'x'.repeat(440), context: { attempts: { plan: 1 }, outputs: {} } });
// 99 rows: with 1 or 3 clients, client k only ever touches rows ≡ k (mod 3), so no two wait on one row.
const ROWS = 99;

async function client(schema: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: BENCH_PG_URL, options: `-c search_path=${schema}` });
  await c.connect();
  return c;
}

type Write = (c: pg.Client, row: number) => Promise<unknown>;

const fourStatements: Write = async (c, row) => {
  await c.query('BEGIN');
  await c.query('INSERT INTO hist (task, body) VALUES ($1, $2)', [row, PAYLOAD]);
  await c.query('UPDATE task SET n = n + 1 WHERE id = $1', [row]);
  await c.query('COMMIT');
};

const oneStatement: Write = (c, row) =>
  c.query('WITH h AS (INSERT INTO hist (task, body) VALUES ($1, $2)) UPDATE task SET n = n + 1 WHERE id = $1', [row, PAYLOAD]);

/** Transactions per second over `count` writes per client after 200 warm-up writes each (not counted). */
async function measure(schema: string, write: Write, clients: number, count: number): Promise<number> {
  const cs = await Promise.all(Array.from({ length: clients }, () => client(schema)));
  try {
    const run = (n: number) =>
      Promise.all(
        cs.map(async (c, k) => {
          for (let i = 0; i < n; i++) await write(c, (k + i * clients) % ROWS);
        }),
      );
    await run(200);
    const start = nowMs();
    await run(count);
    return (clients * count) / ((nowMs() - start) / 1000);
  } finally {
    await Promise.all(cs.map((c) => c.end()));
  }
}

export async function pgLimit(quick: boolean): Promise<{ fourStatements: number; oneStatement: number; oneStatement3: number }> {
  const schema = newBenchSchema('limit');
  const setup = await client('public');
  try {
    await setup.query(`CREATE SCHEMA "${schema}"`);
    await setup.query(`CREATE TABLE "${schema}".hist (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, task INTEGER, body TEXT)`);
    await setup.query(`CREATE TABLE "${schema}".task (id INTEGER PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0)`);
    await setup.query(`INSERT INTO "${schema}".task (id) SELECT generate_series(0, ${ROWS - 1})`);
  } finally {
    await setup.end();
  }
  const n = quick ? 1000 : 5000;
  return {
    fourStatements: await measure(schema, fourStatements, 1, n),
    oneStatement: await measure(schema, oneStatement, 1, n),
    oneStatement3: await measure(schema, oneStatement, 3, n),
  };
}
