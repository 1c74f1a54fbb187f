import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { replayHistory } from '../src/engine/replay.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { CAIRN_BIN, isAlive, Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const AUTO = { approvals: { plan: 'auto', implementation: 'auto' } } as const;

/**
 * What must hold for every task after any crash: the database is intact, seq has no gap, each stage
 * run has at most one recorded result, and replaying the stored events reproduces the stored snapshot.
 */
async function expectConsistent(ws: Workspace) {
  const store = openSqliteStore(ws.dbFile);
  try {
    expect(store.db.pragma('integrity_check', { simple: true })).toBe('ok');
    for (const task of await store.listTasks()) {
      const history = await store.getHistory(task.id);
      expect(history.map((h) => h.seq)).toEqual(history.map((_, i) => i + 1));
      const results = history
        .filter((h) => h.event.type === 'STAGE_SUCCEEDED' || h.event.type === 'STAGE_FAILED')
        .map((h) => `${h.event.stage}#${h.event.attempt}`);
      expect(new Set(results).size).toBe(results.length);
      expect(replayHistory(history)).toEqual(task.snapshot);
      const runs = await store.getStageRuns(task.id);
      expect(runs.filter((r) => r.outcome === 'succeeded' || r.outcome === 'failed').length).toBe(results.length);
    }
  } finally {
    await store.close();
  }
}

/** A task as a (snapshot) database file holds it: state, lease holder, event types, open runs. */
function readTaskFrom(file: string, id: number) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const task = db.prepare('SELECT state, lease_owner FROM tasks WHERE id = ?').get(id) as { state: string; lease_owner: string | null };
    return {
      state: task.state,
      leaseOwner: task.lease_owner,
      events: db.prepare('SELECT event_type FROM transitions WHERE task_id = ? ORDER BY seq').pluck().all(id),
      openRuns: db.prepare('SELECT stage, attempt FROM stage_runs WHERE task_id = ? AND outcome IS NULL').raw().all(id),
    };
  } finally {
    db.close();
  }
}

describe('crash recovery with real processes', () => {
  it('kill -9 in the middle of a stage: the next start re-runs it as attempt 2 and the task completes', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig(AUTO, { implement: { STAGE_SLEEP: '30', SLEEP_ATTEMPTS: '1' } });
    const first = ws.startDaemon();
    const id = ws.submit('survive a crash');
    const interrupted = await waitFor(() => ws.ledger().find((l) => l.stage === 'implement'), { what: 'implement started' });
    expect(await first.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    // The stage runs in its own process group, so it outlived the daemon.
    expect(isAlive(interrupted.pid)).toBe(true);

    const resumable = ws.json<any[]>(['list-resumable']);
    expect(resumable).toEqual([expect.objectContaining({ id, state: 'implementing', stage: 'implement', attempt: 1 })]);

    const second = ws.startDaemon();
    try {
      await second.waitForLog(new RegExp(`resuming task ${id}: its implement stage \\(attempt 1\\) was interrupted`));
      await second.waitForLog(new RegExp(`ended process group ${interrupted.pid}`));
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed after resume' });
      expect(isAlive(interrupted.pid)).toBe(false);
      // The startup snapshot is written while the daemon resumes, yet holds the moment before: restoring it undoes the resume.
      const { snapshot } = await second.waitForLog(/^startup snapshot \S+ taken/);
      expect(readTaskFrom(path.join(ws.dataDir, 'snapshots', `${snapshot}.db`), id)).toEqual({
        state: 'implementing',
        leaseOwner: resumable[0].session,
        events: ['SUBMIT', 'START', 'STAGE_SUCCEEDED'],
        openRuns: [['implement', 1]],
      });
    } finally {
      await second.kill('SIGTERM');
    }
    expect(ws.ledger().filter((l) => l.stage === 'implement').map((l) => l.attempt)).toEqual([1, 2]);
    const history = ws.history(id);
    expect(history.map((h) => [h.to, h.event.type])).toEqual([
      ['pending', 'SUBMIT'],
      ['planning', 'START'],
      ['implementing', 'STAGE_SUCCEEDED'],
      ['implementing', 'RESUME'],
      ['reviewing', 'STAGE_SUCCEEDED'],
      ['verifying', 'STAGE_SUCCEEDED'],
      ['completed', 'STAGE_SUCCEEDED'],
    ]);
    expect(ws.show(id).runs.map((r: any) => [r.stage, r.attempt, r.outcome])).toEqual([
      ['plan', 1, 'succeeded'],
      ['implement', 1, 'interrupted'],
      ['implement', 2, 'succeeded'],
      ['review', 1, 'succeeded'],
      ['verify', 1, 'succeeded'],
    ]);
    await expectConsistent(ws);
  });

  for (const label of ['after-claim', 'after-stage-exit', 'after-result'] as const) {
    it(`a crash at ${label} loses nothing and records each stage once`, async () => {
      const ws = new Workspace(tempDir());
      ws.writeConfig(AUTO);
      const crashing = ws.startDaemon([], { CAIRN_CRASH_AT: label });
      const id = ws.submit(`crash at ${label}`);
      expect(await crashing.exited).toEqual({ code: null, signal: 'SIGKILL' });
      const restarted = ws.startDaemon();
      try {
        await waitFor(() => ws.show(id).state === 'completed', { what: 'completed after the crash' });
      } finally {
        await restarted.kill('SIGTERM');
      }
      const planRuns = ws.ledger().filter((l) => l.stage === 'plan').map((l) => l.attempt);
      // after-claim: the first run never started. after-stage-exit: it ran, its result was lost, it ran again.
      // after-result: its result was committed, so it is not run again.
      expect(planRuns).toEqual({ 'after-claim': [2], 'after-stage-exit': [1, 2], 'after-result': [1] }[label]);
      await expectConsistent(ws);
    });
  }

  it('kill -9 of `cairn approve` at any moment leaves the task either approved once or still waiting', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const daemon = ws.startDaemon();
    const ids = [1, 2, 3, 4, 5, 6].map((n) => ws.submit(`approve me ${n}`));
    for (const id of ids) await waitFor(() => ws.show(id).state === 'plan_awaiting_approval', { what: `task ${id} at the gate` });
    await daemon.kill('SIGTERM');
    for (const [i, id] of ids.entries()) {
      const child = spawn(process.execPath, [CAIRN_BIN, 'approve', String(id)], { cwd: ws.dir, stdio: 'ignore' });
      // Listened for from the start: a fast approve may finish before the kill.
      const exited = new Promise((r) => child.on('exit', r));
      await new Promise((r) => setTimeout(r, 40 + i * 40));
      child.kill('SIGKILL');
      await exited;
      const approvals = ws.history(id).filter((h) => h.event.type === 'APPROVE');
      const state = ws.show(id).state;
      expect(approvals.length).toBe(state === 'implementing' ? 1 : 0);
      expect(['plan_awaiting_approval', 'implementing']).toContain(state);
      if (state === 'plan_awaiting_approval') expect(ws.cli(['approve', String(id)]).code).toBe(0);
      expect(ws.show(id).state).toBe('implementing');
    }
    await expectConsistent(ws);
  });

  it('SIGTERM stops the stage after the grace period, ends the session stopped, and the next start finishes the task', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ ...AUTO, shutdownGraceMs: 300 }, { plan: { STAGE_SLEEP: '30', SLEEP_ATTEMPTS: '1' } });
    const first = ws.startDaemon();
    const id = ws.submit('stop gracefully');
    const running = await waitFor(() => ws.ledger().find((l) => l.stage === 'plan'), { what: 'plan started' });
    expect(await first.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    await first.waitForLog(/stopped 1 stage\(s\) still running/);
    await first.waitForLog(/cairn daemon stopped/);
    expect(isAlive(running.pid)).toBe(false);
    const status = ws.json(['status']);
    expect(status.session.status).toBe('stopped');
    expect(status.flags.map((f: any) => f.kind)).toContain('resumable');
    expect(ws.json<any[]>(['list-resumable']).map((t) => t.id)).toEqual([id]);

    const second = ws.startDaemon();
    try {
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed on the next start' });
    } finally {
      await second.kill('SIGTERM');
    }
    expect(ws.ledger().filter((l) => l.stage === 'plan').map((l) => l.attempt)).toEqual([1, 2]);
    await expectConsistent(ws);
  });

  it('--no-resume only lists interrupted tasks; --resume=ID resumes just those; `cairn resume` the rest', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ ...AUTO, concurrency: 2 }, { plan: { STAGE_SLEEP: '30', SLEEP_ATTEMPTS: '1' } });
    const crashed = ws.startDaemon();
    const [a, b] = [ws.submit('task a'), ws.submit('task b')];
    await waitFor(() => ws.ledger().length === 2, { what: 'both plans started' });
    await crashed.kill('SIGKILL');

    const listing = ws.startDaemon(['--no-resume']);
    await listing.waitForLog(/2 interrupted task\(s\) left as they are/);
    expect(await listing.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(ws.json<any[]>(['list-resumable']).map((t) => t.id)).toEqual([a, b]);
    expect(ws.ledger().length).toBe(2);

    const selective = ws.startDaemon([`--resume=${a}`]);
    try {
      await waitFor(() => ws.show(a).state === 'completed', { what: 'a completed' });
      expect(ws.show(b).state).toBe('planning');
      expect(ws.json<any[]>(['list-resumable']).map((t) => t.id)).toEqual([b]);
      const r = ws.cli(['resume', String(b)]);
      expect(r.code, r.stderr).toBe(0);
      await waitFor(() => ws.show(b).state === 'completed', { what: 'b completed after cairn resume' });
    } finally {
      await selective.kill('SIGTERM');
    }
    await expectConsistent(ws);
  });
});
