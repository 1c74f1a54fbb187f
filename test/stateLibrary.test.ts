/**
 * Key-value state through the library API: `cairn.state(ns)` on the backend the config selects, and
 * `ctx.state` in module executors given as functions, bound to their task's namespace.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCairn, type ModuleStageContext } from '../src/index.js';
import { deleteRedisPrefixes, REDIS_URL, uniqueRedisPrefix } from './helpers/stateRedis.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const prefixes: string[] = [];
afterAll(() => deleteRedisPrefixes(prefixes));

const AUTO = { plan: 'auto', implementation: 'auto' } as const;

describe('key-value state in the library API', () => {
  it('module executors get ctx.state for their task; cairn.state(ns) reads and writes the same namespace', async () => {
    const dataDir = tempDir();
    const seen: Record<string, unknown> = {};
    const executors = {
      plan: async (_input: unknown, ctx: ModuleStageContext) => {
        await ctx.state.set('plan', { steps: 2 });
        return 'planned';
      },
      implement: async (_input: unknown, ctx: ModuleStageContext) => {
        seen.ns = ctx.state.ns;
        seen.plan = await ctx.state.get('plan');
        seen.fromOutside = await ctx.state.get('from-outside');
        seen.missing = await ctx.state.get('never-set');
        await ctx.state.checkpoint('after_implement');
        return 'implemented';
      },
      review: async () => ({ verdict: 'approve', comments: 'ok' }),
      verify: async () => 'verified',
    };
    // The JSON backend chosen by config alone.
    const cairn = await openCairn({ dataDir, config: { approvals: AUTO, state: { backend: 'json' } }, executors });
    try {
      const task = await cairn.submit({ request: 'use state' });
      await cairn.state(`task-${task.id}`).set('from-outside', 'hello');
      await cairn.start({ pollMs: 20 });
      await waitFor(async () => (await cairn.get(task.id)).state === 'completed', { what: 'completed' });
      expect(seen).toEqual({ ns: `task-${task.id}`, plan: { steps: 2 }, fromOutside: 'hello', missing: undefined });
      const state = cairn.state(`task-${task.id}`);
      expect((await state.list()).map((e) => e.key)).toEqual(['from-outside', 'plan']);
      expect((await state.checkpoints()).map((c) => [c.name, c.keys])).toEqual([['after_implement', 2]]);
      const file = path.join(dataDir, 'kv', `task-${task.id}`, 'state.json');
      expect(JSON.parse(readFileSync(file, 'utf8')).plan.value).toEqual({ steps: 2 });
      expect(existsSync(path.join(dataDir, 'kv', `task-${task.id}`, 'checkpoints', 'after_implement.json'))).toBe(true);
    } finally {
      await cairn.stop();
    }
    await expect(cairn.state('task-1').get('plan')).rejects.toThrow(/used after its stage run or library instance ended/);
  });

  it('a module executor using ctx.state on Redis that cannot be reached fails its stage with the URL in error_details', async () => {
    const prefix = uniqueRedisPrefix('library');
    prefixes.push(prefix);
    const cairn = await openCairn({
      dataDir: tempDir(),
      config: { approvals: AUTO, limits: { stageAttempts: 1 }, state: { backend: 'redis', url: 'redis://127.0.0.1:1/0', prefix } },
      executors: { plan: async (_input: unknown, ctx: ModuleStageContext) => ctx.state.set('k', 1) },
    });
    try {
      const task = await cairn.submit({ request: 'redis is down' });
      await cairn.start({ pollMs: 20 });
      const failed = await waitFor(async () => {
        const t = await cairn.get(task.id);
        return t.state === 'failed' ? t : null;
      }, { what: 'failed' });
      expect(JSON.stringify(failed.snapshot.context)).toContain('cannot reach Redis at redis://127.0.0.1:1/0');
    } finally {
      await cairn.stop();
    }
    // And the same config against the real Redis works.
    const ok = await openCairn({ dataDir: tempDir(), config: { state: { backend: 'redis', url: REDIS_URL, prefix } } });
    try {
      await ok.state('lib').set('k', [1]);
      expect(await ok.state('lib').get('k')).toEqual([1]);
    } finally {
      await ok.stop();
    }
  });
});
