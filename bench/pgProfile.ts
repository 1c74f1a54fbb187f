/**
 * `node --cpu-prof dist/bench/pgProfile.js [tasks]`: cairn in process on a fresh PostgreSQL schema with
 * no-op executors, counting the store's round trips per transition by statement. For explaining the
 * PostgreSQL bench figures; not part of `npm run bench`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { openCairn } from '../src/index.js';
import { nowMs } from './stats.js';
import { BENCH_PG_URL, dropBenchObjects, newBenchSchema } from './scenarios/pgDatabase.js';

const tasks = Number(process.argv[2] ?? 300);
const noop = { plan: async () => 'p', implement: async () => 'i', review: async () => ({ verdict: 'approve' }), verify: async () => 'v' };
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'cairn-pgprof-'));
try {
  const cairn = await openCairn({
    dataDir,
    config: { concurrency: 16, approvals: { plan: 'auto', implementation: 'auto' }, views: false, store: { kind: 'postgres', url: BENCH_PG_URL, schema: newBenchSchema('prof') } },
    executors: noop,
  });
  for (let i = 0; i < tasks; i++) await cairn.submit({ request: `profile ${i}` });
  const connection = cairn.store.connection();
  if (connection.kind !== 'postgres') throw new Error('pgProfile runs on a PostgreSQL store');
  const pool = connection.pool;
  const counts = new Map<string, number>();
  const spent = new Map<string, number>();
  const query = pool.query.bind(pool) as (...a: unknown[]) => Promise<unknown>;
  // Counts what the store sends; every pool.query is one round trip.
  (pool as unknown as { query: unknown }).query = (sql: string | pg.QueryConfig, ...rest: unknown[]) => {
    const text = (typeof sql === 'string' ? sql : sql.text).replace(/\s+/g, ' ').trim();
    const key = /cairn_\w+|FROM tasks t.*?(WHERE t\.\w+ = \$1|WHERE t\.state = 'pending'|WHERE t\.run_stage|LEFT JOIN sessions|ANY)/.exec(text)?.[0] ?? text.slice(0, 50);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const t = nowMs();
    return query(sql, ...rest).finally(() => spent.set(key, (spent.get(key) ?? 0) + nowMs() - t));
  };
  let transitions = 0;
  let completed = 0;
  const done = new Promise<void>((resolve) =>
    cairn.engine.onCommit((task, event) => {
      if (event.type === 'SUBMIT') return;
      transitions++;
      if (task.state === 'completed' && ++completed === tasks) resolve();
    }),
  );
  const t0 = nowMs();
  await cairn.start({ pollMs: 50 });
  await done;
  const seconds = (nowMs() - t0) / 1000;
  await cairn.stop();
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  console.log(`${tasks} tasks, ${transitions} transitions in ${seconds.toFixed(1)} s = ${(transitions / seconds).toFixed(0)}/s; ${total} round trips = ${(total / transitions).toFixed(2)} per transition`);
  for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`${(n / transitions).toFixed(2)}/transition  n=${n}  mean ${((spent.get(k) ?? 0) / n).toFixed(2)} ms  ${k}`);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
  await dropBenchObjects();
}
