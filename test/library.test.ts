import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCairn } from '../src/index.js';
import { replayHistory } from '../src/engine/replay.js';
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
});
