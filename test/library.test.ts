import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCairn } from '../src/index.js';
import { replayHistory } from '../src/engine/replay.js';
import { isAlive, Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const noop = {
  plan: async (input: { request: string }) => ({ plan: `plan for ${input.request}` }),
  implement: async () => 'implemented',
  review: async () => ({ verdict: 'approve', comments: 'ok' }),
  verify: async () => 'verified',
};

describe('openCairn', () => {
  it('drives tasks through all five stages with auto approvals, recording every state in order', async () => {
    const dataDir = tempDir();
    const cairn = await openCairn({ dataDir, config: { approvals: { plan: 'auto', implementation: 'auto' } }, executors: noop });
    const tasks = await Promise.all([1, 2, 3].map((n) => cairn.submit({ request: `task ${n}` })));
    await cairn.start({ pollMs: 20 });
    for (const t of tasks) await waitFor(async () => (await cairn.get(t.id)).state === 'completed', { what: `task ${t.id} completed` });
    const history = await cairn.history(tasks[0].id);
    expect(history.map((h) => h.to)).toEqual(['pending', 'planning', 'implementing', 'reviewing', 'verifying', 'completed']);
    const done = await cairn.get(tasks[0].id);
    expect(replayHistory(history)).toEqual(done.snapshot);
    expect(done.snapshot.context.outputs.plan).toEqual({ plan: 'plan for task 1' });
    await cairn.stop();
    expect(path.basename(cairn.store.location)).toBe('cairn.db');
  });

  it("resume of a task whose daemon was killed -9 mid-stage ends that daemon's stage program before the stage runs again", async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' } }, { plan: { STAGE_SLEEP: '30', SLEEP_ATTEMPTS: '1' } });
    const daemon = ws.startDaemon();
    const id = ws.submit('outlive the daemon');
    const leftover = await waitFor(() => ws.ledger().find((l) => l.stage === 'plan'), { what: 'plan started' });
    expect(await daemon.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    expect(isAlive(leftover.pid)).toBe(true); // its own process group: the kill did not reach it
    const cairn = await openCairn({ dataDir: ws.dataDir, config: JSON.parse(readFileSync(path.join(ws.dir, 'cairn.config.json'), 'utf8')) });
    try {
      expect((await cairn.resume(id)).state).toBe('planning');
      await waitFor(() => !isAlive(leftover.pid), { timeoutMs: 2000, what: 'the leftover plan stage ended by the resume' });
      await cairn.start({ pollMs: 20 });
      await waitFor(async () => (await cairn.get(id)).state === 'completed', { what: 'completed after the resume' });
      // Exactly one plan program at a time: attempt 2 started after attempt 1 was ended.
      expect(ws.ledger().filter((l) => l.stage === 'plan').map((l) => l.attempt)).toEqual([1, 2]);
    } finally {
      await cairn.stop();
      try {
        process.kill(-leftover.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
});
