/**
 * Stale sessions: a daemon that stops answering (SIGSTOP) is marked stale by another process's
 * heartbeat and its task is resumed exactly once; when it wakes up, its late result is refused and it
 * carries on as a new session. A dead predecessor is marked crashed at start, with the tasks resumed
 * named in the log. The fast version writes stale rows directly and runs the heartbeat with an
 * injected clock.
 */
import { hostname } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/loadConfig.js';
import { Heartbeat } from '../src/daemon/heartbeat.js';
import { Engine } from '../src/engine/engine.js';
import { StageResultRefused } from '../src/errors.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const AUTO = { approvals: { plan: 'auto', implementation: 'auto' } } as const;

describe('stale sessions', () => {
  it('a daemon frozen with SIGSTOP is marked stale by a second daemon, which resumes its task exactly once; nothing the frozen one ran is recorded when it wakes', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig(
      { ...AUTO, heartbeat: { cron: '*/1 * * * * *', staleAfter: '2s' }, snapshots: { onStart: false } },
      // Attempt 1 of implement takes 1 s: it ends while its daemon is frozen. Attempt 2 is quick.
      { implement: { STAGE_SLEEP: '1', SLEEP_ATTEMPTS: '1' } },
    );
    const frozen = ws.startDaemon();
    const started = await frozen.waitForLog(/cairn daemon started/);
    const id = ws.submit('survive a freeze');
    await waitFor(() => ws.ledger().find((l) => l.stage === 'implement'), { what: 'implement attempt 1 started' });
    process.kill(frozen.pid, 'SIGSTOP');
    const second = ws.startDaemon();
    try {
      await second.waitForLog(new RegExp(`session ${started.session} \\(pid ${frozen.pid} on .*\\) sent no heartbeat for over 2 s: marked stale`));
      await second.waitForLog(new RegExp(`resuming task ${id}: its implement stage \\(attempt 1\\) was interrupted`));
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed by the second daemon' });

      process.kill(frozen.pid, 'SIGCONT');
      // Awake again: whichever it notices first, the lost lease (its result is refused) or the change in
      // the database (it stops the run), nothing it ran is recorded.
      await frozen.waitForLog(new RegExp(`task ${id}: (result of implement attempt 1 refused|implement attempt 1 stopped; nothing recorded)`));
      await frozen.waitForLog(new RegExp(`session ${started.session} was marked stale by another process: this daemon stopped answering`));
      const replaced = await frozen.waitForLog(/carrying on as session /);
      expect(replaced.replaces).toBe(started.session);
      // The replacement is a live session like any other.
      const status = ws.json(['status']);
      expect(status.sessions.map((s: any) => s.id)).toEqual(expect.arrayContaining([replaced.session]));
      expect(status.stale_sessions.map((s: any) => s.id)).toContain(started.session);
      expect(status.flags.filter((f: any) => f.kind === 'stale_session').map((f: any) => f.session)).toContain(started.session);
    } finally {
      process.kill(frozen.pid, 'SIGCONT');
      await Promise.all([frozen.kill('SIGTERM'), second.kill('SIGTERM')]);
    }
    const history = ws.history(id);
    expect(history.filter((h) => h.event.type === 'RESUME')).toHaveLength(1);
    expect(history.filter((h) => h.event.stage === 'implement' && h.event.type.startsWith('STAGE_')).map((h) => [h.event.type, h.event.attempt])).toEqual([
      ['STAGE_SUCCEEDED', 2],
    ]);
    expect(ws.show(id).runs.filter((r: any) => r.stage === 'implement').map((r: any) => [r.attempt, r.outcome])).toEqual([
      [1, 'interrupted'],
      [2, 'succeeded'],
    ]);
    expect(ws.ledger().filter((l) => l.stage === 'implement').map((l) => l.attempt)).toEqual([1, 2]);
  });

  it('the next start marks a dead predecessor crashed and says which tasks it resumes', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ ...AUTO, concurrency: 2, snapshots: { onStart: false } }, { plan: { STAGE_SLEEP: '30', SLEEP_ATTEMPTS: '1' } });
    const dead = ws.startDaemon();
    const started = await dead.waitForLog(/cairn daemon started/);
    const ids = [ws.submit('a'), ws.submit('b')];
    await waitFor(() => ws.ledger().length === 2, { what: 'both plans started' });
    await dead.kill('SIGKILL');
    const next = ws.startDaemon();
    try {
      await next.waitForLog(new RegExp(`session ${started.session} \\(pid ${dead.pid}\\) ended without stopping; marked crashed`));
      const summary = await next.waitForLog(/resuming 2 interrupted task\(s\)/);
      expect(summary.msg).toBe(`resuming 2 interrupted task(s): ${ids.join(', ')}, left by session ${started.session} (crashed)`);
      expect(summary.tasks).toEqual(ids);
      for (const id of ids) await waitFor(() => ws.show(id).state === 'completed', { what: `task ${id} completed` });
    } finally {
      await next.kill('SIGTERM');
    }
  });

  it('stale rows, injected clock: a silent session is marked stale, its task becomes resumable, and it can take no new lease', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ heartbeat: { cron: '* * * * *', staleAfter: '10m' } });
    ws.createDataDir();
    const config = await loadConfig({ file: path.join(ws.dir, 'cairn.config.json'), cwd: ws.dir, env: {} });
    const store = openSqliteStore(ws.dbFile);
    const t0 = Date.now() - 20 * 60_000;
    let now = t0;
    const engine = new Engine(store, config, () => now);
    const lines: any[] = [];
    const heartbeat = new Heartbeat({ store, config, engine, logger: pino({}, { write: (s: string) => lines.push(JSON.parse(s)) }), now: () => now });
    try {
      // A live process on this host that stopped heartbeating: it is stale, not crashed.
      await store.createSession({ id: 'silent', pid: process.pid, host: hostname(), at: t0 });
      const [held, waiting] = [(await engine.submit({ request: 'held' }, 't')).id, (await engine.submit({ request: 'waiting' }, 't')).id];
      await engine.start(held, 't');
      await engine.start(waiting, 't');
      expect(await store.claimRun(held, 'silent', t0, 30 * 60_000)).not.toBeNull();

      now = t0 + 9 * 60_000;
      expect((await heartbeat.runCycle())!.parts.find((p) => p.name === 'sessions')!.detail).toEqual({ marked: [] });
      expect(await store.findResumable(now)).toEqual([]);

      now = t0 + 10 * 60_000 + 1;
      const report = (await heartbeat.runCycle())!;
      expect(report.parts.find((p) => p.name === 'sessions')!.detail).toEqual({ marked: [{ id: 'silent', status: 'stale' }] });
      expect(lines.map((l) => l.msg)).toContain(`session silent (pid ${process.pid} on ${hostname()}) sent no heartbeat for over 600 s: marked stale; its tasks are resumable`);
      expect(report.flags.map((f) => [f.kind, f.session])).toEqual([['stale_session', 'silent']]);
      expect((await store.findResumable(now)).map((t) => t.id)).toEqual([held]);
      // Woken up, it may not take a lease on anything: others are resuming its work.
      expect(await store.claimRun(waiting, 'silent', now, 60_000)).toBeNull();
      expect(await store.claimRun(waiting, 'someone-else', now, 60_000)).not.toBeNull();

      const status = ws.json(['status']);
      expect(status.flags.map((f: any) => [f.kind, f.task ?? f.session])).toEqual(
        expect.arrayContaining([
          ['resumable', held],
          ['stale_session', 'silent'],
        ]),
      );

      // Another daemon resumes the held task and runs attempt 2; the silent one's late result for
      // attempt 1 is refused by the lease token it was claimed with, and nothing is recorded.
      const [interrupted] = await store.findResumable(now);
      await engine.resumeRun(interrupted, 'daemon:other');
      const retry = (await store.claimRun(held, 'someone-else', now, 60_000))!;
      expect(retry.run.attempt).toBe(2);
      // A third daemon that judged the same record dead must not interrupt attempt 2, now running.
      const recorded = (await store.getHistory(held)).length;
      await expect(engine.resumeRun(interrupted, 'daemon:third')).rejects.toThrow(
        `task ${held} was resumed by someone else while this resume was checking it (its stage now runs in session someone-else); nothing was done`,
      );
      await expect(new Engine(store, engine.config).resumeRun(interrupted, 'daemon:third')).rejects.toThrow(/resumed by someone else/);
      expect((await store.getHistory(held)).length).toBe(recorded);
      const late = { type: 'STAGE_SUCCEEDED', stage: 'plan', attempt: 1, output: { late: true }, at: now } as const;
      await expect(engine.recordStageResult(held, late, 'daemon:silent', interrupted.lease!.token)).rejects.toBeInstanceOf(StageResultRefused);
      await engine.recordStageResult(held, { ...late, attempt: 2, output: { on: 'time' } }, 'daemon:other', retry.lease.token);
      const results = (await store.getHistory(held)).filter((h) => h.event.type === 'STAGE_SUCCEEDED');
      expect(results.map((h) => [h.event.attempt, h.actor])).toEqual([[2, 'daemon:other']]);
    } finally {
      await store.close();
    }
  });
});
