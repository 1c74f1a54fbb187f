/**
 * Drives tasks through the real engine and store in this process, without stage programs: claim the
 * next run as a session would, record its success. For tests that need many tasks in a given state fast.
 */
import type { Engine } from '../../src/engine/engine.js';
import type { Store, TaskRecord } from '../../src/store/store.js';

/** Claims the task's next stage run for `session` and records it as succeeded; returns the task after. */
export async function succeedNextStage(engine: Engine, store: Store, id: number, session: string): Promise<TaskRecord> {
  const claim = await store.claimRun(id, session, engine.now(), 60_000);
  if (!claim) throw new Error(`task ${id} has no stage run to claim`);
  const { stage, attempt } = claim.run;
  const output = stage === 'review' ? { verdict: 'approve', comments: `review of ${id}` } : { stage, task: id };
  const { task } = await engine.recordStageResult(id, { type: 'STAGE_SUCCEEDED', stage, attempt, output, at: engine.now() }, `daemon:${session}`, claim.lease.token);
  return task;
}

/** Starts a pending task and runs it to `completed`, approving at manual gates. */
export async function driveToCompletion(engine: Engine, store: Store, id: number, session = 'test-session'): Promise<TaskRecord> {
  let task = (await engine.start(id, 'test')).task;
  for (let i = 0; i < 20 && task.state !== 'completed'; i++) {
    task = task.status === 'awaiting_approval' ? (await engine.approve(id, 'tester')).task : await succeedNextStage(engine, store, id, session);
  }
  if (task.state !== 'completed') throw new Error(`task ${id} stopped at ${task.state}`);
  return task;
}
