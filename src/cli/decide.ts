/**
 * The verbs that move one task by one event: approve, reject, cancel, retry, resume, rewind.
 * Each parses its id, applies the event through the engine, and says where the task is now.
 */
import type { Engine, StepResult } from '../engine/engine.js';
import type { TaskRecord } from '../store/store.js';
import { actorName, createCliEngine, parseTaskId, stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { taskSummaryJson } from '../taskJson.js';

function whatNext(task: TaskRecord): string {
  switch (task.status) {
    case 'awaiting_approval':
      return `approve with \`cairn approve ${task.id}\` or reject with \`cairn reject ${task.id} --reason TEXT\``;
    case 'in_progress':
      return task.runStage ? `a running daemon runs ${task.runStage} next (\`cairn start\` if none runs)` : 'a daemon is on it';
    case 'pending':
      return 'it waits for its dependencies and a free slot';
    case 'failed':
      return `\`cairn retry ${task.id}\` puts it back into the stage that failed`;
    default:
      return 'nothing more to do';
  }
}

export async function applyVerb(
  idArg: string,
  verb: string,
  opts: { json?: boolean },
  global: GlobalOptions,
  io: Output,
  act: (engine: Engine, id: number) => Promise<StepResult>,
): Promise<void> {
  const id = parseTaskId(idArg);
  await withStore(global, async ({ config, store }) => {
    const { engine, done } = await createCliEngine({ config, store });
    const { task } = await act(engine, id);
    await done();
    if (opts.json) io.out(JSON.stringify(taskSummaryJson(task)));
    else io.out(`task ${task.id} ${verb}; now ${task.state}: ${whatNext(task)}`);
  });
}

export const approve = (id: string, o: { by?: string; comment?: string; json?: boolean }, g: GlobalOptions, io: Output = stdio) =>
  applyVerb(id, `approved by ${actorName(o.by)}`, o, g, io, (e, taskId) => e.approve(taskId, actorName(o.by), o.comment));

export const reject = (id: string, o: { by?: string; reason: string; json?: boolean }, g: GlobalOptions, io: Output = stdio) =>
  applyVerb(id, `rejected by ${actorName(o.by)}`, o, g, io, (e, taskId) => e.reject(taskId, o.reason, actorName(o.by)));

export const cancel = (id: string, o: { by?: string; reason?: string; json?: boolean }, g: GlobalOptions, io: Output = stdio) =>
  applyVerb(id, 'cancelled', o, g, io, (e, taskId) => e.cancel(taskId, actorName(o.by), o.reason));

export const retry = (id: string, o: { by?: string; json?: boolean }, g: GlobalOptions, io: Output = stdio) =>
  applyVerb(id, 'put back for another try', o, g, io, (e, taskId) => e.retry(taskId, actorName(o.by)));

export const rewind = (id: string, o: { to: string; by?: string; json?: boolean }, g: GlobalOptions, io: Output = stdio) =>
  applyVerb(id, `rewound to ${o.to}`, o, g, io, (e, taskId) => e.rewind(taskId, o.to, actorName(o.by)));

export const resume = (id: string, o: { json?: boolean }, g: GlobalOptions, io: Output = stdio) =>
  applyVerb(id, 'resumed', o, g, io, async (e, taskId) => {
    const { resumeTask } = await import('../engine/resumeTask.js');
    return resumeTask(e, taskId, `user:${actorName()}`);
  });
