/** Throughput, single-transition latency, reads on a big database, and resume after a crash. */
import path from 'node:path';
import { openCairn } from '../../src/index.js';
import { inFreshDir, medianOfRuns, nowMs, spread, summarize, type BenchOptions, type Durability, type Row } from '../stats.js';
import { fillHistory, fillInterrupted, realSnapshot, sqliteDbOf } from './fixtures.js';

const noop = { plan: async () => 'p', implement: async () => 'i', review: async () => ({ verdict: 'approve' }), verify: async () => 'v' };
const AUTO = { plan: 'auto', implementation: 'auto' } as const;

/** 2,000 tasks through all five stages, no-op module stages, auto gates, concurrency 50. */
async function throughput(durability: Durability, tasks: number): Promise<{ transitionsPerSecond: number; seconds: number }> {
  return inFreshDir(async (dataDir) => {
    const cairn = await openCairn({ dataDir, config: { durability, concurrency: 50, approvals: AUTO, views: false }, executors: noop });
    for (let i = 0; i < tasks; i++) await cairn.submit({ request: `throughput ${i}` });
    let completed = 0;
    let transitions = 0;
    const done = new Promise<void>((resolve) =>
      cairn.engine.onCommit((task, event) => {
        if (event.type === 'SUBMIT') return;
        transitions++;
        if (task.state === 'completed' && ++completed === tasks) resolve();
      }),
    );
    const start = nowMs();
    await cairn.start({ pollMs: 50 });
    await done;
    const seconds = (nowMs() - start) / 1000;
    await cairn.stop();
    return { transitionsPerSecond: transitions / seconds, seconds };
  });
}

/** One task alone: the time of one transition with its audit row (RESUME in planning, repeated). */
async function latency(durability: Durability, samples: number) {
  return inFreshDir(async (dataDir) => {
    const cairn = await openCairn({ dataDir, config: { durability, views: false } });
    const task = await cairn.submit({ request: 'latency' });
    await cairn.engine.start(task.id, 'bench');
    const resume = () => cairn.engine.apply(task.id, () => ({ type: 'RESUME', at: Date.now() }), 'bench');
    for (let i = 0; i < 200; i++) await resume(); // warm-up, not counted
    const times: number[] = [];
    for (let i = 0; i < samples; i++) {
      const t0 = nowMs();
      await resume();
      times.push(nowMs() - t0);
    }
    await cairn.stop();
    return summarize(times);
  });
}

/** Times `samples` reads of random task ids (1..tasks), in ms each; awaited alike, sync or not. */
async function timeRandomReads(samples: number, tasks: number, read: (id: number) => unknown): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const id = 1 + Math.floor(Math.random() * tasks);
    const t0 = nowMs();
    await read(id);
    times.push(nowMs() - t0);
  }
  return times;
}

async function reads(tasks: number, transitionsPerTask: number, samples: number) {
  return inFreshDir(async (dataDir) => {
    const snapshot = await realSnapshot(path.join(dataDir, 'template'));
    const cairn = await openCairn({ dataDir, config: { views: false } });
    fillHistory(cairn.store, snapshot, tasks, transitionsPerTask);
    const store = cairn.store;
    for (let i = 0; i < 500; i++) await store.getTask(1 + (i % tasks)); // warm-up
    const getTimes = await timeRandomReads(samples, tasks, (id) => store.getTask(id));
    // The floor under get(id): the same point reads straight through better-sqlite3 on the same file.
    const raw = sqliteDbOf(store).prepare('SELECT * FROM tasks WHERE id = ?');
    const rawTimes = await timeRandomReads(samples, tasks, (id) => raw.get(id));
    const listTimes: number[] = [];
    const statuses = ['completed', 'failed', 'pending', 'awaiting_approval'] as const;
    for (let i = 0; i < Math.max(200, samples / 10); i++) {
      const t0 = nowMs();
      await store.listTasks({ status: statuses[i % statuses.length], limit: 50 });
      listTimes.push(nowMs() - t0);
    }
    await cairn.stop();
    return { get: summarize(getTimes), rawGet: summarize(rawTimes), list: summarize(listTimes) };
  });
}

async function resume(durability: Durability, count: number) {
  return inFreshDir(async (dataDir) => {
    const snapshot = await realSnapshot(path.join(dataDir, 'template'));
    // Never finishes, so dispatch itself is what is measured.
    const hang = () => new Promise<never>(() => {});
    const cairn = await openCairn({
      dataDir,
      config: { durability, concurrency: 4, views: false },
      executors: { plan: hang, implement: hang, review: hang, verify: hang },
    });
    fillInterrupted(cairn.store, snapshot, count);
    const t0 = nowMs();
    const report = await cairn.start({ pollMs: 50 });
    const seconds = (nowMs() - t0) / 1000;
    const resumed = report.resumed.length;
    await cairn.stop();
    return { seconds, resumed };
  });
}

export async function engineScenarios(opts: BenchOptions): Promise<Row[]> {
  const rows: Row[] = [];
  for (const durability of ['full', 'normal'] as const) {
    const limit = opts.reference.get(`limit.single.${durability}`) ?? NaN;
    const workload = opts.quick ? 300 : 2000;
    await throughput(durability, opts.quick ? 100 : 300); // warm-up run, not counted
    const t = await medianOfRuns(opts.quick ? 1 : 5, async () => (await throughput(durability, workload)).transitionsPerSecond);
    rows.push({
      scenario: 'throughput',
      durability,
      metric: `${workload} tasks × 5 stages, concurrency 50, median of ${t.values.length} (${spread(t.values)})`,
      value: t.median,
      unit: 'transitions/s',
      target: `≥ 2 × limit (${(2 * limit).toFixed(0)}); ratio ${(t.median / limit).toFixed(2)}×`,
      held: t.median >= 2 * limit,
    });
    opts.reference.set(`throughput.${durability}`, t.median);
    const l = await latency(durability, opts.quick ? 1000 : 5000);
    const bound = durability === 'full' ? 2 : 0.5;
    rows.push(
      { scenario: 'latency', durability, metric: `one transition, p50 (n=${l.n})`, value: l.p50, unit: 'ms', target: 'reported', held: null },
      { scenario: 'latency', durability, metric: 'one transition, p99', value: l.p99, unit: 'ms', target: `< ${bound} ms`, held: l.p99 < bound },
      { scenario: 'latency', durability, metric: 'one transition, p99.9', value: l.p999, unit: 'ms', target: 'reported', held: null },
    );
  }
  const tasks = opts.quick ? 10_000 : 100_000;
  const r = await reads(tasks, 10, opts.quick ? 2000 : 10_000);
  rows.push(
    { scenario: 'reads', durability: '-', metric: `raw better-sqlite3 SELECT by id, same file, p99 (p50 ${(r.rawGet.p50 * 1000).toFixed(1)} µs)`, value: r.rawGet.p99 * 1000, unit: 'µs', target: 'reference', held: null },
    { scenario: 'reads', durability: '-', metric: `get(id) p99 (p50 ${(r.get.p50 * 1000).toFixed(1)} µs), ${tasks} tasks / ${tasks * 10} transitions`, value: r.get.p99 * 1000, unit: 'µs', target: '< 50 µs', held: r.get.p99 * 1000 < 50 },
    { scenario: 'reads', durability: '-', metric: 'list({status, limit: 50}) p99', value: r.list.p99, unit: 'ms', target: '< 1 ms', held: r.list.p99 < 1 },
  );
  const interrupted = opts.quick ? 1000 : 10_000;
  for (const durability of ['full', 'normal'] as const) {
    const s = await resume(durability, interrupted);
    rows.push({
      scenario: 'resume',
      durability,
      metric: `${interrupted} interrupted tasks put back in line (${s.resumed} resumed)`,
      value: s.seconds,
      unit: 's',
      target: '< 1 s',
      held: s.seconds < 1 && s.resumed === interrupted,
    });
  }
  return rows;
}
