/**
 * Two real daemons on one PostgreSQL schema with a `cycle` command: every heartbeat tick wakes both,
 * and exactly one of them runs the command, so each cycle's tasks are submitted once. (Before the
 * upkeep lock reached PostgreSQL, both ran it on every tick and every task arrived twice.) With
 * `cycle.every`, which SQLite counts in its heartbeat rows, PostgreSQL still runs it every N ticks.
 * A daemon killed in the middle of the upkeep does not stop it for long: once its session is marked
 * stale, the other takes the lock over.
 */
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { adminQuery, newTestSchema, schemaUrl } from './helpers/postgres.js';
import { trackDaemons, writeMachineConfig, type Machine } from './helpers/pgDaemons.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const CYCLE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'heartbeat', 'cycleLedger.sh');
const TICK_MS = 3000;

const { machine, store } = trackDaemons();

/** Runs of the cycle command so far: when (the heartbeat's time) and on which machine. */
function readRuns(ledger: string): { at: number; machine: string }[] {
  if (!existsSync(ledger)) return [];
  return readFileSync(ledger, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [at, machine] = line.split(' ');
      return { at: Number(at), machine };
    });
}

/** Two daemons on `url` whose cycle command appends to `ledger`; returns once both have started. */
async function startTwoDaemons(url: string, ledger: string, every = 1, extra: { staleAfter?: string; hold?: string } = {}): Promise<Machine[]> {
  const daemons = ['machine-a', 'machine-b'].map((host) => {
      const m = machine(url, host);
    writeMachineConfig(m, {
      // Manual gates: the cycle's tasks stop after planning, so the daemons stay quiet apart from the heartbeat.
      approvals: { plan: 'manual', implementation: 'manual' },
      heartbeat: { cron: `*/${TICK_MS / 1000} * * * * *`, staleAfter: extra.staleAfter ?? '30s' },
      cycle: { run: [CYCLE], env: { CYCLE_LEDGER: ledger, CYCLE_MACHINE: host, ...(extra.hold ? { CYCLE_HOLD: extra.hold } : {}) }, every },
    });
    return m;
  });
  await Promise.all(daemons.map((m) => m.start()));
  return daemons;
}

describe('the cycle command with two daemons on one database', () => {
  it('runs once per heartbeat tick, on one daemon, and its tasks are submitted once', { timeout: 90_000 }, async () => {
    const schema = await newTestSchema('upkeep');
    const url = schemaUrl(schema);
    const ledger = path.join(tempDir(), 'cycle-ledger');
    const daemons = await startTwoDaemons(url, ledger);
    await waitFor(() => readRuns(ledger).length >= 4, { what: 'four runs of the cycle command', timeoutMs: 60_000, intervalMs: 200 });
    await Promise.all(daemons.map((m) => m.stop()));

    const runs = readRuns(ledger);
    // One run per tick: no two runs in the same TICK_MS slot (the cron fires on multiples of it).
    const slots = runs.map((r) => Math.floor(r.at / TICK_MS));
    expect(new Set(slots).size, `runs: ${JSON.stringify(runs)}`).toBe(runs.length);

    // Each run's task exists exactly once, submitted by the cycle, and there is no other.
    const db = await store(url);
    const tasks = await db.listTasks();
    const expected = runs.map((r) => `cycle run at ${r.at} on ${r.machine}`).sort();
    expect(tasks.map((t) => t.request).sort()).toEqual(expected);
    for (const task of tasks) expect((await db.getHistory(task.id))[0].actor).toBe('cycle');

    // The lock was taken on PostgreSQL (a row per lock name), not skipped as "no lock to take".
    const locks = await adminQuery<{ name: string }>('SELECT name FROM maintenance_locks ORDER BY name', [], schema);
    expect(locks.map((l) => l.name)).toContain('heartbeat-cycle');
  });

  it('with cycle.every: 2, runs on every second tick across both daemons', { timeout: 90_000 }, async () => {
    const url = schemaUrl(await newTestSchema('every'));
    const ledger = path.join(tempDir(), 'cycle-ledger');
    const daemons = await startTwoDaemons(url, ledger, 2);
    await waitFor(() => readRuns(ledger).length >= 3, { what: 'three runs of the cycle command', timeoutMs: 60_000, intervalMs: 200 });
    await Promise.all(daemons.map((m) => m.stop()));

    const ticks = readRuns(ledger).map((r) => Math.floor(r.at / TICK_MS)).sort((a, b) => a - b);
    // Two ticks apart, never one (and none missed while both daemons ran).
    expect(ticks.slice(1).map((t, i) => t - ticks[i]), `ticks: ${ticks.join(' ')}`).toEqual(ticks.slice(1).map(() => 2));
  });

  it('a daemon killed mid-upkeep: the other takes the lock over once its session is stale, and runs the cycle', { timeout: 90_000 }, async () => {
    const schema = await newTestSchema('killed');
    const url = schemaUrl(schema);
    const dir = tempDir();
    const ledger = path.join(dir, 'cycle-ledger');
    const hold = path.join(dir, 'hold');
    const daemons = await startTwoDaemons(url, ledger, 1, { staleAfter: '4s', hold });
    const holder = await waitFor(() => existsSync(path.join(hold, 'holder')) && readFileSync(path.join(hold, 'holder'), 'utf8').trim(), {
      what: 'the first cycle command holding the upkeep',
      timeoutMs: 20_000,
    });
    const [machine, pid] = holder.split(' ');
    const killed = daemons.find((m) => m.host === machine)!;
    const survivor = daemons.find((m) => m !== killed)!;
    await killed.daemon!.kill('SIGKILL');
    process.kill(-Number(pid), 'SIGKILL'); // the cycle command's own process group, orphaned by the kill
    const held = await adminQuery<{ owner: string }>("SELECT owner FROM maintenance_locks WHERE name = 'heartbeat-upkeep'", [], schema);
    expect(held).toEqual([{ owner: killed.sessionId }]);

    // The lock's TTL is 15 minutes; the survivor does not wait for it.
    await waitFor(() => readRuns(ledger).some((r) => r.machine === survivor.host), { what: 'a cycle run by the surviving daemon', timeoutMs: 40_000, intervalMs: 200 });
    await survivor.stop();
    expect(readRuns(ledger).every((r) => r.machine === survivor.host)).toBe(true);
  });
});
