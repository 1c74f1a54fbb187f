import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCairn } from '../src/index.js';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

/** key=value lines into an object. */
function parseState(text: string): Record<string, string> {
  return Object.fromEntries(text.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

describe('zero-parse views', () => {
  it('after every transition of a full workflow, tasks/<id>.state says what the database says, in at most 160 bytes', async () => {
    const dataDir = tempDir();
    const cairn = await openCairn({
      dataDir,
      config: { approvals: { plan: 'auto', implementation: 'auto' }, limits: { reviewCycles: 1 } },
      executors: {
        plan: async () => 'plan',
        implement: async () => 'code',
        review: async (input) => ({ verdict: input.attempt === 1 ? 'request_changes' : 'approve', comments: 'again' }),
        verify: async () => 'ok',
      },
    });
    const seen: string[] = [];
    // Registered after the views' own listener, so each check runs once the view is written.
    cairn.engine.onCommit((task) => {
      const file = path.join(dataDir, 'tasks', `${task.id}.state`);
      const text = readFileSync(file, 'utf8');
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(160);
      const view = parseState(text);
      expect(view).toEqual({
        id: String(task.id),
        state: task.state,
        status: task.status,
        stage: task.runStage ?? '',
        attempt: task.runStage ? String(task.runAttempt) : '',
        updated: new Date(task.updatedAt).toISOString(),
      });
      seen.push(view.state);
    });
    const task = await cairn.submit({ request: 'watch my views' });
    await cairn.start({ pollMs: 10 });
    await waitFor(async () => (await cairn.get(task.id)).state === 'completed', { what: 'completed' });
    await cairn.stop();
    expect(seen).toEqual(['pending', 'planning', 'implementing', 'reviewing', 'implementing', 'reviewing', 'verifying', 'completed']);
    const current = parseState(readFileSync(path.join(dataDir, 'current.state'), 'utf8'));
    expect(current).toMatchObject({ running: '0', waiting: '0', pending: '0', failed: '0' });
  });

  it('a daemon keeps current.state and the markdown current; deleted views come back with `cairn views rebuild`', async () => {
    const ws = new Workspace(tempDir());
    // Implement takes 3 s, so the view read right after `cairn approve` cannot already show the daemon's
    // next step (under load it once read 'reviewing').
    ws.writeConfig({ approvals: { plan: 'manual', implementation: 'auto' }, limits: { stageAttempts: 1 } }, { verify: { FAIL_ATTEMPTS: '0' }, implement: { STAGE_SLEEP: '3' } });
    const daemon = ws.startDaemon();
    try {
      const waiting = ws.submit('wait for me');
      const blocked = ws.submit('blocked by the first', ['--depends-on', String(waiting), '--priority', 'high']);
      await waitFor(() => ws.show(waiting).state === 'plan_awaiting_approval', { what: 'at the gate' });
      const view = () => parseState(readFileSync(path.join(ws.dataDir, 'tasks', `${waiting}.state`), 'utf8'));
      expect(view()).toMatchObject({ state: 'plan_awaiting_approval', status: 'awaiting_approval' });
      await waitFor(() => parseState(readFileSync(path.join(ws.dataDir, 'current.state'), 'utf8')).waiting === '1', { what: 'current.state counts the wait' });
      const current = parseState(readFileSync(path.join(ws.dataDir, 'current.state'), 'utf8'));
      expect(current).toMatchObject({ status: 'running', waiting: '1', pending: '1', session: ws.json(['status']).session.id });

      // The markdown is refreshed on the heartbeat schedule (every second in this config).
      await waitFor(() => readFileSync(path.join(ws.dataDir, 'status', 'current-state.md'), 'utf8').includes(`cairn approve ${waiting}`), {
        what: 'current-state.md lists the approval',
      });
      // Written right after current-state.md in the same refresh: waited for, not read in between.
      await waitFor(
        () =>
          readFileSync(path.join(ws.dataDir, 'status', 'next-steps.md'), 'utf8').includes(
            `#${blocked} [high] blocked by the first (waits for #${waiting} plan_awaiting_approval)`,
          ),
        { what: 'next-steps.md lists the blocked task' },
      );

      // A CLI approval rewrites the view from the CLI process itself.
      expect(ws.cli(['approve', String(waiting)]).code).toBe(0);
      expect(view().state).toBe('implementing');
      await waitFor(() => ws.show(blocked).state === 'plan_awaiting_approval', { what: 'the dependent planned' });

      const before = readFileSync(path.join(ws.dataDir, 'tasks', `${waiting}.state`), 'utf8');
      rmSync(path.join(ws.dataDir, 'tasks'), { recursive: true });
      rmSync(path.join(ws.dataDir, 'status'), { recursive: true });
      const rebuilt = ws.cli(['views', 'rebuild']);
      expect(rebuilt.code, rebuilt.stderr).toBe(0);
      expect(rebuilt.stdout).toMatch(/rewrote the views of 2 task\(s\)/);
      expect(parseState(readFileSync(path.join(ws.dataDir, 'tasks', `${waiting}.state`), 'utf8')).state).toBe(ws.show(waiting).state);
      expect(existsSync(path.join(ws.dataDir, 'status', 'blockers.md'))).toBe(true);
      expect(before).toContain(`id=${waiting}`);
    } finally {
      await daemon.kill('SIGTERM');
    }
    expect(parseState(readFileSync(path.join(ws.dataDir, 'current.state'), 'utf8')).status).toBe('stopped');
  });

  it('blockers.md names failed tasks with their error and how to retry', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' }, limits: { stageAttempts: 1 } }, { plan: { FAIL_ATTEMPTS: '9' } });
    const daemon = ws.startDaemon();
    try {
      const id = ws.submit('doomed');
      await waitFor(() => ws.show(id).state === 'failed', { what: 'failed' });
      await waitFor(() => readFileSync(path.join(ws.dataDir, 'status', 'blockers.md'), 'utf8').includes(`#${id}`), { what: 'blockers.md lists it' });
      expect(readFileSync(path.join(ws.dataDir, 'status', 'blockers.md'), 'utf8')).toContain(`exited with code 3. Retry with \`cairn retry ${id}\``);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('views: false writes no views', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ views: false, approvals: { plan: 'auto', implementation: 'auto' } });
    const daemon = ws.startDaemon();
    try {
      const id = ws.submit('no views');
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed' });
    } finally {
      await daemon.kill('SIGTERM');
    }
    for (const p of ['tasks', 'current.state', 'status']) expect(existsSync(path.join(ws.dataDir, p))).toBe(false);
  });
});
