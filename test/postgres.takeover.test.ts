/**
 * Takeover between daemons on one PostgreSQL schema. The victim runs as another machine (CAIRN_HOST),
 * so the others cannot check its pid and must go by its lease and heartbeat, as across real machines:
 * killed with -9, its running stages are re-run by the others (attempt + 1) after its lease expires;
 * frozen with SIGSTOP past its lease and thawed, its late completion is refused and logged; and with
 * every connection cut (pg_terminate_backend) while they work, the daemons reconnect and lose nothing.
 */
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import type { PostgresStore } from '../src/store/postgres.js';
import { isAlive, STAGE_SCRIPT } from './helpers/cairnProcess.js';
import { newTestSchema, schemaUrl, terminateBackends } from './helpers/postgres.js';
import { AUTO, expectConsistent, trackDaemons, writeMachineConfig, type Machine } from './helpers/pgDaemons.js';
import { waitFor } from './helpers/tmp.js';

const { machine, store: openStore } = trackDaemons();

const HEARTBEAT = { cron: '*/1 * * * * *', staleAfter: '2s' };

/** Two daemons on this host and a victim on "another machine", where implement attempt 1 sleeps `sleepS` seconds. */
async function cluster(label: string, sleepS: string) {
  const url = schemaUrl(await newTestSchema(label));
  const store = await openStore(url);
  const make = (host: string | null) => {
    const m = machine(url, host);
    // The stage fixture keeps a ledger (one line per execution, with its pid) in the machine's own directory.
    const stage = { run: [STAGE_SCRIPT], env: { STAGE_RECORD_DIR: m.ws.recordDir } };
    const implement = host ? { run: [STAGE_SCRIPT], env: { STAGE_RECORD_DIR: m.ws.recordDir, STAGE_SLEEP: sleepS, SLEEP_ATTEMPTS: '1' } } : stage;
    writeMachineConfig(m, { concurrency: 3, heartbeat: HEARTBEAT, stages: { plan: stage, implement, review: stage, verify: stage } });
    return m;
  };
  return { url, store, victim: make('victim-machine'), others: [make(null), make(null)] };
}

async function submitAll(store: PostgresStore, n: number): Promise<number[]> {
  const engine = new Engine(store, defaultConfig(AUTO));
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push((await engine.submit({ request: `takeover ${i}` }, 'user:test')).id);
  return ids;
}

/** Waits until the victim's implement stage programs (attempt 1) have started; returns their tasks and pids. */
async function runningOn(victim: Machine, count: number) {
  return waitFor(
    () => {
      const started = victim.ws.ledger().filter((l) => l.stage === 'implement' && l.attempt === 1);
      return started.length >= count && started.map((l) => ({ taskId: l.task, pid: l.pid }));
    },
    { what: `${count} implement stage(s) running on the victim`, timeoutMs: 20_000 },
  );
}

describe('takeover', () => {
  it('kill -9 one daemon mid-stage: after its lease expires the others re-run its stages, and every task completes once', { timeout: 60_000 }, async () => {
    const { store, victim, others } = await cluster('kill', '8');
    await victim.start();
    const ids = await submitAll(store, 6);
    // The victim alone first, so it surely holds running stages; then the others join.
    const held = await runningOn(victim, 3);
    await Promise.all(others.map((m) => m.start()));
    const leases = new Map<number, number>();
    for (const run of held) {
      const lease = (await store.getTask(run.taskId))!.lease!;
      expect(lease.owner).toBe(victim.sessionId);
      leases.set(run.taskId, lease.expiresAt);
    }
    await victim.daemon!.kill('SIGKILL');

    await waitFor(async () => (await store.countByStatus()).completed === ids.length, { what: 'every task completed', timeoutMs: 40_000, intervalMs: 200 });
    // The victim's session is judged by its silence (another host: no pid to check), not by a pid. Its
    // expired leases may already have let the others finish its tasks; the judgement comes on a heartbeat.
    await waitFor(async () => (await store.listSessions()).find((s) => s.id === victim.sessionId)?.status === 'stale', {
      what: "the victim's session marked stale",
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    await Promise.all(others.map((m) => m.stop()));
    for (const run of held) {
      const history = await store.getHistory(run.taskId);
      const resume = history.find((h) => h.event.type === 'RESUME')!;
      expect(resume, `task ${run.taskId} was resumed`).toBeDefined();
      // Not before the victim's lease ran out: it was at least what it was just before the kill.
      expect(resume.at).toBeGreaterThan(leases.get(run.taskId)!);
      expect(others.map((m) => `daemon:${m.sessionId!.slice(0, 8)}`)).toContain(resume.actor);
      const implement = history.filter((h) => h.event.type === 'STAGE_SUCCEEDED' && h.event.stage === 'implement').map((h) => h.event.attempt);
      expect(implement).toEqual([2]);
      const runs = (await store.getStageRuns(run.taskId)).filter((r) => r.stage === 'implement');
      expect(runs.map((r) => [r.attempt, r.outcome])).toEqual([
        [1, 'interrupted'],
        [2, 'succeeded'],
      ]);
      expect(others.map((m) => m.sessionId)).toContain(runs[1].sessionId);
    }
    for (const id of ids) {
      const completions = (await store.getHistory(id)).filter((h) => h.event.type === 'STAGE_SUCCEEDED').map((h) => h.event.stage);
      expect(completions).toEqual(['plan', 'implement', 'review', 'verify']);
    }
    await expectConsistent(store);
  });

  it('SIGSTOP one daemon past its lease, then SIGCONT: its late completion is refused and logged, never recorded', { timeout: 60_000 }, async () => {
    const { store, victim, others } = await cluster('stop', '3');
    const daemon = await victim.start();
    const ids = await submitAll(store, 3);
    const held = await runningOn(victim, 3);
    daemon.child.kill('SIGSTOP');
    await Promise.all(others.map((m) => m.start()));

    // The others take the frozen daemon's stages over and finish every task while it sleeps.
    await waitFor(async () => (await store.countByStatus()).completed === ids.length, { what: 'every task completed', timeoutMs: 40_000, intervalMs: 200 });
    // Its own stage programs (not frozen: their own process group) have finished meanwhile.
    await waitFor(() => held.every((r) => !isAlive(r.pid)), { what: "the frozen daemon's stage programs to end", timeoutMs: 10_000 });

    daemon.child.kill('SIGCONT');
    // Thawed, the daemon learns two things at once: its stage programs ended, and (from the others'
    // notifications) its tasks moved on. Whichever it handles first, the late result is thrown away
    // with a log line: offered to the engine and refused (the common case), or dropped because the run
    // was already stopped as overtaken.
    const outcomes: string[] = [];
    for (const run of held) {
      const line = await daemon.waitForLog(
        new RegExp(`task ${run.taskId}: (result of implement attempt 1 refused|implement attempt 1 stopped; nothing recorded)`),
        15_000,
      );
      outcomes.push(/refused/.test(line.msg) ? 'refused' : 'stopped');
      if (/refused/.test(line.msg)) expect(line.msg).toMatch(/no longer applies|lease .* was lost/);
      else await daemon.waitForLog(new RegExp(`task ${run.taskId} is now completed; stopping its implement stage`), 1000);
    }
    console.log(`late completions of the frozen daemon: ${outcomes.join(', ')}`);
    await Promise.all(others.map((m) => m.stop()));
    await victim.stop();

    for (const run of held) {
      const history = await store.getHistory(run.taskId);
      const implement = history.filter((h) => h.event.type.startsWith('STAGE_') && h.event.stage === 'implement').map((h) => h.event.attempt);
      expect(implement).toEqual([2]);
      expect((await store.getStageRuns(run.taskId)).find((r) => r.stage === 'implement' && r.attempt === 1)?.outcome).toBe('interrupted');
    }
    for (const id of ids) expect((await store.getTask(id))?.state).toBe('completed');
    await expectConsistent(store);
  });

  it('connections cut while daemons run: they reconnect and go on; nothing is lost or recorded twice', { timeout: 60_000 }, async () => {
    const schema = await newTestSchema('cut');
    const appName = `cairn_cut_${schema.slice(-8)}`;
    const url = schemaUrl(schema, { application_name: appName });
    const store = await openStore(schemaUrl(schema));
    const daemons = [machine(url, null), machine(url, null)];
    for (const m of daemons) {
      const stage = { run: [STAGE_SCRIPT], env: { STAGE_RECORD_DIR: m.ws.recordDir, STAGE_SLEEP: '0.2' } };
      writeMachineConfig(m, { concurrency: 4, heartbeat: { cron: '*/1 * * * * *', staleAfter: '20s' }, stages: { plan: stage, implement: stage, review: stage, verify: stage } });
    }
    await Promise.all(daemons.map((m) => m.start()));
    const ids = await submitAll(store, 24);
    let cuts = 0;
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 400));
      cuts += await terminateBackends(appName);
    }
    expect(cuts).toBeGreaterThan(6);
    await waitFor(async () => (await store.countByStatus()).completed === ids.length, { what: 'every task completed', timeoutMs: 40_000, intervalMs: 200 });
    for (const m of daemons) expect(m.daemon!.child.exitCode).toBeNull();
    await Promise.all(daemons.map((m) => m.stop()));
    for (const id of ids) {
      const history = await store.getHistory(id);
      expect(history.filter((h) => h.event.type === 'STAGE_SUCCEEDED').map((h) => `${h.event.stage}#${h.event.attempt}`)).toEqual([
        'plan#1',
        'implement#1',
        'review#1',
        'verify#1',
      ]);
    }
    // Each stage program ran once: no run was lost and started again.
    const executions = daemons.flatMap((m) => m.ws.ledger());
    expect(executions).toHaveLength(ids.length * 4);
    await expectConsistent(store);
  });
});
