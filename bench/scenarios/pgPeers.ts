/**
 * The PostgreSQL peers a user would pick instead of cairn, on the same server in the same run:
 * graphile-worker (no-op jobs/s, in its own schema) and the DBOS SDK (a five-step workflow, steps/s,
 * its system tables in a database of its own). Both run in this process with `concurrency` jobs or
 * workflows in flight, as one cairn daemon has `concurrency` stages in flight. First 10% of completions
 * dropped as warm-up.
 */
import { DBOS } from '@dbos-inc/dbos-sdk';
import { Logger, run, runMigrations } from 'graphile-worker';
import { nowMs } from '../stats.js';
import { adminQuery, BENCH_PG_URL, databaseUrl, newBenchDatabase, newBenchSchema, rateAfterWarmup } from './pgDatabase.js';

/** Jobs queued up front in one statement, then one runner with `concurrency` workers drains them. */
export async function graphileJobs(jobs: number, concurrency: number): Promise<{ perSecond: number; seconds: number }> {
  const schema = newBenchSchema('gw');
  const options = { connectionString: BENCH_PG_URL, schema, concurrency, maxPoolSize: concurrency + 2, noHandleSignals: true, pollInterval: 1000 };
  await runMigrations(options);
  await adminQuery(`SELECT "${schema}".add_job('noop', '{}'::json) FROM generate_series(1, $1)`, [jobs]);
  const times: number[] = [];
  const runner = await run({ ...options, logger: new Logger(() => () => undefined), taskList: { noop: async () => undefined } });
  await new Promise<void>((resolve) =>
    runner.events.on('job:success', () => {
      times.push(nowMs());
      if (times.length === jobs) resolve();
    }),
  );
  await runner.stop();
  return rateAfterWarmup(times);
}

/** `workflows` five-step workflows, `concurrency` at a time; steps/s = 5 × workflows/s. */
export async function dbosSteps(workflows: number, concurrency: number): Promise<{ perSecond: number; seconds: number }> {
  const database = await newBenchDatabase('dbos');
  DBOS.setConfig({ name: 'cairn-bench', systemDatabaseUrl: databaseUrl(database), systemDatabasePoolSize: concurrency + 2, logLevel: 'error' });
  const fiveSteps = DBOS.registerWorkflow(
    async (n: number) => {
      let x = n;
      for (let s = 0; s < 5; s++) x = await DBOS.runStep(async () => x + 1, { name: `step${s}` });
      return x;
    },
    { name: 'fiveSteps' },
  );
  await DBOS.launch();
  try {
    const times: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < workflows) {
          await fiveSteps(next++);
          times.push(nowMs());
        }
      }),
    );
    const r = rateAfterWarmup(times);
    return { perSecond: r.perSecond * 5, seconds: r.seconds };
  } finally {
    await DBOS.shutdown({ deregister: true });
  }
}
