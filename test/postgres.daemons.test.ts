/**
 * Several real daemons on one PostgreSQL schema: they share 300 tasks with every stage completion
 * recorded exactly once and each doing part of the work; a task submitted on one machine starts on
 * another well under a second later; the CLI works unchanged against PostgreSQL; and a database that
 * cannot be reached at start is a clear error and exit 1. Each test has a schema of its own.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { newTestSchema, schemaUrl } from './helpers/postgres.js';
import { AUTO, expectConsistent, readQuickLedger, trackDaemons, writeMachineConfig } from './helpers/pgDaemons.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const { machine, store } = trackDaemons();

describe('three daemons on one database', () => {
  it('share 300 tasks: all complete, every stage completion is recorded once, each daemon does some of the work', { timeout: 120_000 }, async () => {
    const url = schemaUrl(await newTestSchema('three'));
    const ledger = path.join(tempDir(), 'ledger');
    const daemons = [machine(url, 'machine-a'), machine(url, 'machine-b'), machine(url, 'machine-c')];
    for (const m of daemons) {
      writeMachineConfig(m, { concurrency: 8, heartbeat: { cron: '*/1 * * * * *', staleAfter: '20s' } }, { QUICK_LEDGER: ledger });
    }
    await Promise.all(daemons.map((m) => m.start()));
    const db = await store(url);
    const engine = new Engine(db, defaultConfig(AUTO));
    const started = Date.now();
    const ids: number[] = [];
    for (let i = 0; i < 300; i++) ids.push((await engine.submit({ request: `task ${i}`, tags: [`batch-${i % 3}`] }, 'user:test')).id);
    await waitFor(async () => (await db.countByStatus()).completed === 300, { what: '300 tasks completed', timeoutMs: 100_000, intervalMs: 250 });
    const seconds = (Date.now() - started) / 1000;
    await Promise.all(daemons.map((m) => m.stop()));

    expect(await db.countByStatus()).toEqual({ completed: 300 });
    const perSession = new Map<string, number>();
    let transitions = 0;
    for (const id of ids) {
      const history = await db.getHistory(id);
      transitions += history.length;
      const completions = history.filter((h) => h.event.type === 'STAGE_SUCCEEDED').map((h) => `${h.event.stage}#${h.event.attempt}`);
      expect(completions).toEqual(['plan#1', 'implement#1', 'review#1', 'verify#1']);
      // Sorted by stage: a run's start time is the claiming daemon's dispatch time, so across daemons it may tie or cross.
      const order = ['plan', 'implement', 'review', 'verify'];
      const runs = (await db.getStageRuns(id)).sort((a, b) => order.indexOf(a.stage) - order.indexOf(b.stage));
      expect(runs.map((r) => [r.stage, r.attempt, r.outcome])).toEqual([
        ['plan', 1, 'succeeded'],
        ['implement', 1, 'succeeded'],
        ['review', 1, 'succeeded'],
        ['verify', 1, 'succeeded'],
      ]);
      for (const r of runs) perSession.set(r.sessionId, (perSession.get(r.sessionId) ?? 0) + 1);
    }
    await expectConsistent(db);
    // Every run was executed once: no stage program ran twice.
    const executions = readQuickLedger(ledger);
    expect(executions).toHaveLength(1200);
    expect(new Set(executions.map((e) => e.runId)).size).toBe(1200);
    // Each daemon did some of the work.
    expect(daemons.map((m) => perSession.get(m.sessionId!) ?? 0).every((n) => n > 0), JSON.stringify([...perSession])).toBe(true);
    expect([...perSession.keys()].sort()).toEqual(daemons.map((m) => m.sessionId!).sort());
    console.log(
      `300 tasks on 3 daemons: ${seconds.toFixed(1)} s, ${(transitions / seconds).toFixed(0)} transitions/s; ` +
        `stage runs per daemon: ${daemons.map((m) => perSession.get(m.sessionId!)).join(', ')}`,
    );
  });

  it('a task submitted on one machine starts on another well under a second later; the CLI works unchanged', { timeout: 60_000 }, async () => {
    const url = schemaUrl(await newTestSchema('notify'));
    const worker = machine(url, 'worker');
    // Polling once a minute and beating hourly: only the NOTIFY can start the task within a second.
    writeMachineConfig(worker, {
      ...AUTO,
      concurrency: 2,
      approvals: { plan: 'manual', implementation: 'auto' },
      heartbeat: { cron: '0 0 * * * *', staleAfter: '5m' },
    });
    await worker.start({ CAIRN_POLL_MS: '60000' });
    const submitter = machine(url, 'laptop');
    writeMachineConfig(submitter, { approvals: { plan: 'manual', implementation: 'auto' } });
    const latencies: number[] = [];
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const id = submitter.json<{ id: number }>(['submit', `from the laptop ${i}`]).id;
      ids.push(id);
      await waitFor(() => submitter.json(['show', String(id)]).state === 'plan_awaiting_approval', { what: `task ${id} planned` });
      const history = submitter.json<any[]>(['history', String(id)]);
      const submitted = Date.parse(history[0].at);
      const start = history.find((h) => h.event.type === 'START');
      expect(start.actor).toBe(`daemon:${worker.sessionId!.slice(0, 8)}`);
      latencies.push(Date.parse(start.at) - submitted);
    }
    console.log(`submit on one machine → START on another: ${latencies.join(', ')} ms`);
    for (const ms of latencies) expect(ms).toBeLessThan(1000);

    // Every verb against PostgreSQL, from the other machine.
    const [first, second, third] = ids;
    expect(submitter.cli(['approve', String(first), '--by', 'ann']).code).toBe(0);
    expect(submitter.cli(['reject', String(second), '--reason', 'not like this']).code).toBe(0);
    expect(submitter.cli(['cancel', String(third)]).code).toBe(0);
    await waitFor(() => submitter.json(['show', String(first)]).state === 'completed', { what: 'the approved task to complete' });
    await waitFor(() => submitter.json(['show', String(second)]).state === 'plan_awaiting_approval' && submitter.json<any[]>(['history', String(second)]).length >= 5, {
      what: 'the rejected task to be planned again',
    });
    expect(submitter.json<any[]>(['list', '--status', 'completed']).map((t) => t.id)).toEqual([first]);
    expect(submitter.json(['show', String(first)])).toMatchObject({
      id: first,
      state: 'completed',
      approvals: [{ gate: 'plan', decision: 'approved', by: 'ann' }, { gate: 'implementation', decision: 'auto_approved', by: 'auto' }],
      checkpoints: expect.arrayContaining([{ name: 'after_verification', at: expect.any(String) }]),
    });
    expect(submitter.json(['rewind', String(first), '--to', 'after_planning']).state).toBe('plan_awaiting_approval');
    const status = submitter.json(['status']);
    expect(status.database).toMatchObject({ kind: 'postgres', location: expect.stringContaining('(schema cairn_t_'), size_bytes: null });
    expect(status.sessions.map((s: any) => [s.id, s.host])).toEqual([[worker.sessionId, 'worker']]);
    expect(status.counts).toEqual({ awaiting_approval: 2, cancelled: 1 });
    expect(submitter.json<any[]>(['list-resumable'])).toEqual([]);
    await worker.stop();
    expect(submitter.json(['status']).flags.map((f: any) => f.kind)).toContain('no_daemon');
    await expectConsistent(await store(url));
  });
});

describe('a database that cannot be reached', () => {
  it('at start: a clear error naming the host, exit 1, for the daemon and for a CLI verb', async () => {
    const m = machine('postgres://postgres@127.0.0.1:1/test');
    writeMachineConfig(m);
    for (const args of [['start'], ['list'], ['submit', 'nowhere to go']]) {
      const r = m.cli(args);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^cairn: cannot reach PostgreSQL at 127\.0\.0\.1:1 \(database "test"\): .*ECONNREFUSED/);
      expect(r.stderr).toContain('Check that the server is running');
      expect(r.stdout).toBe('');
    }
    const flag = m.ws.cli(['list', '--database', 'postgres://postgres@no-such-host.invalid/test']);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toContain('cannot reach PostgreSQL at no-such-host.invalid:5432');
  });
});
