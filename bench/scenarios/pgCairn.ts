/**
 * cairn on PostgreSQL: transitions/s in process (openCairn, no-op function executors: the store's cost
 * without process overhead) and with 1, 2 and 3 real `cairn start` processes on one schema (module
 * stages that return at once, auto approvals). Daemon figures come from the transitions table's `at`
 * column: every transition but SUBMIT, from the moment the last daemon's session existed, with the
 * first 10% dropped as warm-up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCairn } from '../../src/index.js';
import { nowMs } from '../stats.js';
import { adminQuery, BENCH_PG_URL, newBenchSchema, rateAfterWarmup } from './pgDatabase.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CAIRN = path.resolve(here, '..', '..', 'src', 'cairn.cjs');
const AUTO = { plan: 'auto', implementation: 'auto' } as const;
const noop = { plan: async () => 'p', implement: async () => 'i', review: async () => ({ verdict: 'approve' }), verify: async () => 'v' };
const NOOP_MODULE = `export default async (input) => (input.stage === 'review' ? { verdict: 'approve', comments: 'fine' } : { stage: input.stage });\n`;

export interface CairnRate {
  perSecond: number;
  seconds: number;
  counted: number;
  transitionsPerTask: number;
}

function pgConfig(schema: string, concurrency: number) {
  return {
    concurrency,
    approvals: AUTO,
    views: false,
    store: { kind: 'postgres' as const, url: BENCH_PG_URL, schema },
    snapshots: { onStart: false, drillEvery: null },
  };
}

/** `tasks` tasks through all stages in this process; rate from each commit's time as the engine reports it. */
export async function inProcess(tasks: number, concurrency: number): Promise<CairnRate> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-pg-'));
  try {
    const cairn = await openCairn({ dataDir, config: pgConfig(newBenchSchema('inproc'), concurrency), executors: noop });
    await submitAll((request) => cairn.submit({ request }), tasks);
    const times: number[] = [];
    let completed = 0;
    const done = new Promise<void>((resolve) =>
      cairn.engine.onCommit((task, event) => {
        if (event.type === 'SUBMIT') return;
        times.push(nowMs());
        if (task.state === 'completed' && ++completed === tasks) resolve();
      }),
    );
    await cairn.start({ pollMs: 50 });
    await done;
    await cairn.stop();
    return { ...rateAfterWarmup(times), transitionsPerTask: times.length / tasks };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Submits in 8 parallel lanes: the tasks must all be waiting before the daemons start. */
async function submitAll(submit: (request: string) => Promise<unknown>, tasks: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < tasks) await submit(`bench task ${next++}`);
  }));
}

interface Daemon {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: string | null }>;
  stderr: () => string;
}

function startDaemon(dir: string, host: string): Daemon {
  // warn: per-stage info lines would measure pino and the pipe, not the orchestrator.
  const child = spawn(process.execPath, [CAIRN, 'start', '--config', path.join(dir, 'cairn.config.json')], {
    cwd: dir,
    env: { ...process.env, CAIRN_HOST: host, CAIRN_LOG_LEVEL: 'warn', CAIRN_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, stderr: () => stderr };
}

async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | null>, daemons: Daemon[]): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = daemons.find((d) => d.child.exitCode !== null || d.child.signalCode !== null);
    if (dead) throw new Error(`a cairn daemon exited (${dead.child.exitCode ?? dead.child.signalCode}) while waiting for ${what}: ${dead.stderr()}`);
    const value = await check();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `daemons` real `cairn start` processes on one fresh schema, each with `concurrency` slots. */
export async function withDaemons(daemonCount: number, tasks: number, concurrency: number): Promise<CairnRate> {
  const schema = newBenchSchema(`d${daemonCount}`);
  const root = mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-pgd-'));
  const daemons: Daemon[] = [];
  try {
    const modulePath = path.join(root, 'noop.mjs');
    writeFileSync(modulePath, NOOP_MODULE);
    const stage = { module: modulePath };
    const setup = await openCairn({ dataDir: path.join(root, 'setup'), config: pgConfig(schema, concurrency) });
    await submitAll((request) => setup.submit({ request }), tasks);
    await setup.stop();
    for (let i = 0; i < daemonCount; i++) {
      const dir = path.join(root, `machine${i}`);
      const config = { ...pgConfig(schema, concurrency), dataDir: path.join(dir, 'state'), stages: { plan: stage, implement: stage, review: stage, verify: stage } };
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'cairn.config.json'), JSON.stringify(config));
      daemons.push(startDaemon(dir, `bench-machine-${i}`));
    }
    const q = (sql: string) => adminQuery(sql.replaceAll('$S', `"${schema}"`));
    const started = await waitFor(`${daemonCount} daemon session(s)`, 30_000, async () => {
      const rows = await q(`SELECT max(started_at)::float8 AS at, count(*)::int AS n FROM $S.sessions WHERE status = 'active'`);
      return rows[0].n === daemonCount ? Number(rows[0].at) : null;
    }, daemons);
    await waitFor(`${tasks} tasks to complete`, 15 * 60_000, async () => {
      const rows = await q(`SELECT count(*)::int AS n FROM $S.tasks WHERE status = 'completed'`);
      return rows[0].n === tasks ? true : null;
    }, daemons);
    await Promise.all(daemons.map(async (d) => {
      d.child.kill('SIGTERM');
      const exit = await d.exited;
      if (exit.code !== 0) throw new Error(`a cairn daemon exited ${exit.code ?? exit.signal} on SIGTERM: ${d.stderr()}`);
    }));
    const rows = await q(`SELECT at::float8 AS at FROM $S.transitions WHERE event_type <> 'SUBMIT' AND at >= ${started} ORDER BY at`);
    const [{ n }] = await q(`SELECT count(*)::int AS n FROM $S.transitions WHERE event_type <> 'SUBMIT'`);
    return { ...rateAfterWarmup(rows.map((r) => Number(r.at))), transitionsPerTask: n / tasks };
  } finally {
    for (const d of daemons) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
}
