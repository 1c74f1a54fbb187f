/**
 * `npm run bench -- --store postgres`: the PostgreSQL limit, cairn in process and with 1, 2 and 3
 * daemons, graphile-worker and DBOS, all on the same server in one run, then the ratios the issue asks
 * for (goal: cairn's transitions/s ≥ DBOS's steps/s). Every schema and database it makes is dropped.
 * Full mode sizes each measured run for ≥ 10 s from a short calibration run of the same thing.
 */
import type { BenchOptions, Row } from '../stats.js';
import { inProcess, withDaemons } from './pgCairn.js';
import { checkServer, dropBenchObjects } from './pgDatabase.js';
import { pgLimit } from './pgLimit.js';
import { dbosSteps, graphileJobs } from './pgPeers.js';

/** Stages (or jobs, workflows) in flight per process: cairn daemons, graphile-worker and DBOS alike. */
const CONCURRENCY = 16;
const TARGET_SECONDS = 12;

/** In full mode: a calibration run at the quick size (not reported), then one sized for ~12 s. */
async function sized<T extends { perSecond: number }>(opts: BenchOptions, quickSize: number, perItem: number, measure: (n: number) => Promise<T>): Promise<T & { size: number }> {
  if (opts.quick) return { ...(await measure(quickSize)), size: quickSize };
  const calibration = await measure(quickSize);
  const size = Math.max(quickSize, Math.ceil((calibration.perSecond * TARGET_SECONDS) / perItem));
  return { ...(await measure(size)), size };
}

const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

export async function postgresScenario(opts: BenchOptions): Promise<Row[]> {
  const version = await checkServer();
  const rows: Row[] = [];
  const row = (scenario: string, metric: string, value: number, unit: string, target = 'reference', held: boolean | null = null) =>
    rows.push({ scenario, durability: '-', metric, value, unit, target, held });
  try {
    const limit = await pgLimit(opts.quick);
    row('pg-limit', `PostgreSQL ${version}: BEGIN+INSERT+UPDATE+COMMIT, 1 client`, limit.fourStatements, 'tx/s');
    row('pg-limit', 'same as one statement (CTE), 1 client', limit.oneStatement, 'tx/s', `ratio to 4 statements ${ratio(limit.oneStatement, limit.fourStatements)}`);
    row('pg-limit', 'same as one statement (CTE), 3 clients', limit.oneStatement3, 'tx/s');

    // Transitions per task: START and the four stage results (auto approvals happen inside those); the rows report the measured count.
    const tpt = 5;
    const inproc = await sized(opts, opts.quick ? 150 : 300, tpt, (n) => inProcess(n, CONCURRENCY));
    row('pg-cairn', `in process, ${inproc.size} tasks × ${inproc.transitionsPerTask.toFixed(1)} transitions, concurrency ${CONCURRENCY}`, inproc.perSecond, 'transitions/s',
      `${ratio(inproc.perSecond, limit.oneStatement)} of the 1-client CTE limit`);

    const daemons: number[] = [];
    for (const count of [1, 2, 3]) {
      const d = await sized(opts, opts.quick ? 100 : 200, tpt, (n) => withDaemons(count, n, CONCURRENCY));
      daemons.push(d.perSecond);
      row('pg-cairn', `${count} \`cairn start\` daemon${count > 1 ? 's' : ''}, ${d.size} tasks, ${d.seconds.toFixed(0)} s (transitions table)`, d.perSecond, 'transitions/s',
        count === 1 ? `${ratio(d.perSecond, limit.oneStatement)} of the 1-client CTE limit` : `${ratio(d.perSecond, daemons[0])} of 1 daemon`);
    }

    const gw = await sized(opts, opts.quick ? 2000 : 3000, 1, (n) => graphileJobs(n, CONCURRENCY));
    row('pg-peer', `graphile-worker 0.16 no-op jobs, ${gw.size} jobs, concurrency ${CONCURRENCY}`, gw.perSecond, 'jobs/s');
    const dbos = await sized(opts, opts.quick ? 200 : 300, 5, (n) => dbosSteps(n, CONCURRENCY));
    row('pg-peer', `DBOS SDK 5.3 five-step workflow, ${dbos.size} workflows, ${CONCURRENCY} in flight`, dbos.perSecond, 'steps/s');

    const best = Math.max(...daemons);
    row('pg-ratio', 'cairn 1 daemon / DBOS steps/s', daemons[0] / dbos.perSecond, '×', 'goal ≥ 1', daemons[0] >= dbos.perSecond);
    row('pg-ratio', 'cairn best of 1–3 daemons / DBOS steps/s', best / dbos.perSecond, '×', 'goal ≥ 1', best >= dbos.perSecond);
    row('pg-ratio', 'cairn in process / DBOS steps/s', inproc.perSecond / dbos.perSecond, '×', 'goal ≥ 1', inproc.perSecond >= dbos.perSecond);
    row('pg-ratio', 'cairn 1 daemon / graphile-worker jobs/s', daemons[0] / gw.perSecond, '×', 'reported');
    return rows;
  } finally {
    await dropBenchObjects();
  }
}
