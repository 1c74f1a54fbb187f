/**
 * Group commit (issue 6): transitions that are ready together share one store transaction, each
 * caller learns its own write's outcome, and a refused write in a batch leaves the others committed.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { InvalidTransitionError } from '../src/errors.js';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.js';
import type { TaskRecord, TransitionWrite } from '../src/store/store.js';
import { tempDir } from './helpers/tmp.js';

function openEngine(): { store: SqliteStore; engine: Engine; batches: number[] } {
  const store = openSqliteStore(path.join(tempDir(), 'cairn.db'));
  // Records the size of every batch the engine hands the real store; the store itself does the work.
  const batches: number[] = [];
  const commit = store.commitTransitions.bind(store);
  store.commitTransitions = (writes: TransitionWrite[]) => {
    batches.push(writes.length);
    return commit(writes);
  };
  return { store, engine: new Engine(store, defaultConfig({}, path.dirname(store.location))), batches };
}

describe('group commit', () => {
  it('commits transitions asked for in the same turn in one transaction, each with its own outcome', async () => {
    const { store, engine, batches } = openEngine();
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) ids.push((await engine.submit({ request: `batch ${i}` }, 'test')).id);
    await engine.cancel(ids[0], 'test'); // already cancelled: its START below is refused

    batches.length = 0;
    const settled = await Promise.allSettled(ids.map((id) => engine.start(id, 'test')));

    // The machine refuses the cancelled task's START before anything is written; the other 19 share one commit.
    expect(batches).toEqual([19]);
    expect(settled[0].status).toBe('rejected');
    expect((settled[0] as PromiseRejectedResult).reason).toBeInstanceOf(InvalidTransitionError);
    for (const [i, id] of ids.entries()) {
      const task = (await store.getTask(id))!;
      expect(task.state).toBe(i === 0 ? 'cancelled' : 'planning');
      if (i > 0) expect((settled[i] as PromiseFulfilledResult<{ task: { version: number } }>).value.task.version).toBe(task.version);
    }
    await store.close();
  });

  it('a duplicate stage result in a batch is refused alone; the rest of the batch commits', async () => {
    const { store, engine } = openEngine();
    const now = Date.now();
    const a = (await engine.submit({ request: 'a' }, 'test')).id;
    const b = (await engine.submit({ request: 'b' }, 'test')).id;
    await Promise.all([engine.start(a, 'test'), engine.start(b, 'test')]);
    const [claimA, claimB] = await store.claimRuns([a, b], 'sess', now, 60_000);
    const result = (id: number, token: number) =>
      engine.recordStageResult(id, { type: 'STAGE_SUCCEEDED', stage: 'plan', attempt: 1, output: 'plan', at: now + 1 }, 'daemon:test', token);
    await result(a, claimA.lease.token);

    // Reopen a's run as if the first recording had been lost, so only the UNIQUE index can refuse the second.
    store.db.prepare("UPDATE stage_runs SET outcome = NULL, finished_at = NULL WHERE task_id = ?").run(a);
    store.db.prepare('UPDATE tasks SET lease_owner = ?, lease_token = ? WHERE id = ?').run('sess', claimA.lease.token, a);
    const before = (await store.getTask(a))!;
    const writeFor = (task: TaskRecord, token: number): TransitionWrite => ({
      taskId: task.id,
      expectedVersion: task.version,
      before: task,
      from: 'planning',
      to: 'plan_awaiting_approval',
      status: 'awaiting_approval',
      event: { type: 'STAGE_SUCCEEDED', stage: 'plan', attempt: 1, output: 'plan', at: now + 2 } as TransitionWrite['event'],
      actor: 'daemon:test',
      at: now + 2,
      snapshot: before.snapshot,
      checkpoints: [],
      nextRun: null,
      completion: { stage: 'plan', attempt: 1, outcome: 'succeeded', exitCode: 0, signal: null, leaseToken: token },
    });
    const bTask = (await store.getTask(b))!;
    const [dup, ok] = await store.commitTransitions([writeFor(before, claimA.lease.token), writeFor(bTask, claimB.lease.token)]);

    expect(dup).toEqual({ ok: false, reason: 'duplicate', message: `task ${a}: plan attempt 1 already has a recorded result` });
    expect(ok.ok).toBe(true);
    expect((await store.getStageRuns(a))[0].outcome).toBeNull(); // the refused write's changes were rolled back
    expect((await store.getTask(a))!.version).toBe(before.version);
    expect((await store.getTask(b))!.state).toBe('plan_awaiting_approval');
    await store.close();
  });
});
