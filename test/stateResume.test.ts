/**
 * Key-value state across a kill -9, with real daemons: a command stage that stored progress with
 * `cairn state set` and a module stage that stored it with `ctx.state` are both killed mid-stage; the
 * resumed attempt (attempt 2) sees what attempt 1 stored. Run on each backend.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfigFile } from '../src/config.js';
import { CAIRN_BIN, Workspace } from './helpers/cairnProcess.js';
import { deleteRedisPrefixes, REDIS_URL, uniqueRedisPrefix } from './helpers/stateRedis.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'state');
const COMMAND_STAGE = path.join(fixtures, 'command-stage.sh');
const MODULE_STAGE = path.join(fixtures, 'module-stage.mjs');

const prefixes: string[] = [];
afterAll(() => deleteRedisPrefixes(prefixes));

function stateConfig(kind: 'sqlite' | 'json' | 'redis'): NonNullable<ConfigFile['state']> {
  if (kind === 'sqlite') return { backend: 'sqlite' };
  // A state.dir of its own: the stage's `cairn state` can only find it through CAIRN_CONFIG.
  if (kind === 'json') return { backend: 'json', dir: 'elsewhere/kv' };
  const prefix = uniqueRedisPrefix('resume');
  prefixes.push(prefix);
  return { backend: 'redis', url: REDIS_URL, prefix };
}

describe.each(['sqlite', 'json', 'redis'] as const)('key-value state survives kill -9 and resume (%s)', (kind) => {
  it('a command stage (`cairn state set`) and a module stage (`ctx.state`) see attempt 1\'s values in attempt 2', async () => {
    const ws = new Workspace(tempDir());
    const marker = (stage: string) => path.join(ws.recordDir, `${stage}-attempt-1-stored`);
    ws.writeConfig({
      approvals: { plan: 'auto', implementation: 'auto' },
      state: stateConfig(kind),
      stages: {
        // cwd elsewhere: no cairn.config.json to stumble on, so the stage relies on CAIRN_CONFIG.
        plan: { run: [COMMAND_STAGE], cwd: ws.recordDir, env: { CAIRN_BIN, NODE_BIN: process.execPath, STAGE_RECORD_DIR: ws.recordDir } },
        implement: { module: MODULE_STAGE },
      },
    });
    const env = { STAGE_RECORD_DIR: ws.recordDir };

    const first = ws.startDaemon([], env);
    const id = ws.submit('keep state across crashes');
    const ns = `task-${id}`;
    await waitFor(() => existsSync(marker('plan')), { what: 'plan attempt 1 stored its progress', timeoutMs: 15_000 });
    expect(await first.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    const stored = JSON.parse(ws.cli(['state', 'get', 'command-progress', '--ns', ns, '--json']).stdout);
    expect(stored.value).toEqual({ attempt: 1, run: `${id}.plan.1` });

    const second = ws.startDaemon([], env);
    await waitFor(() => existsSync(marker('implement')), { what: 'implement attempt 1 stored its progress', timeoutMs: 15_000 });
    expect(await second.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });

    const third = ws.startDaemon([], env);
    try {
      await third.waitForLog(new RegExp(`resuming task ${id}: its implement stage \\(attempt 1\\) was interrupted`));
      await third.waitForLog(new RegExp(`task ${id}: verify attempt 1 finished; now completed`), 20_000);
    } finally {
      await third.kill('SIGTERM');
    }

    const task = ws.show(id);
    expect(task.outputs.plan).toEqual({
      attempt: 2,
      ns,
      seen: { ns, key: 'command-progress', value: { attempt: 1, run: `${id}.plan.1` }, updated_at: stored.updated_at },
    });
    expect(task.outputs.implementation).toEqual({
      attempt: 2,
      ns,
      seen: { key: 'module-progress', value: { attempt: 1, run: `${id}.implement.1`, stage: 'implement' }, updatedAt: expect.any(String) },
      keys: ['command-progress', 'module-progress'],
    });
    expect(task.runs.map((r: any) => [r.stage, r.attempt, r.outcome])).toEqual([
      ['plan', 1, 'interrupted'],
      ['plan', 2, 'succeeded'],
      ['implement', 1, 'interrupted'],
      ['implement', 2, 'succeeded'],
      ['review', 1, 'succeeded'],
      ['verify', 1, 'succeeded'],
    ]);
    // Both stages wrote into the task's namespace of the configured backend, which the CLI reads too.
    const keys = JSON.parse(ws.cli(['state', 'list', '--ns', ns, '--json']).stdout).map((e: any) => e.key);
    expect(keys).toEqual(['command-progress', 'module-progress']);
    if (kind === 'json') expect(existsSync(path.join(ws.dir, 'elsewhere', 'kv', ns, 'state.json'))).toBe(true);
  });
});
