/** `cairn show ID`: one task with its outputs, approvals, checkpoints and runs. */
import { TaskNotFoundError } from '../errors.js';
import { withTaskStore } from './archivedTask.js';
import { parseTaskId, stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { renderTaskDetail } from './format.js';
import { taskDetailJson } from '../taskJson.js';

export async function run(idArg: string, opts: { json?: boolean; archived?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const id = parseTaskId(idArg);
  await withStore(global, (ctx) => withTaskStore(ctx, id, opts.archived, async (store) => {
    const task = await store.getTask(id);
    if (!task) throw new TaskNotFoundError(id);
    const detail = taskDetailJson(task, await store.getCheckpoints(id), await store.getStageRuns(id), await store.listNotes({ taskId: id }));
    io.out(opts.json ? JSON.stringify(detail) : renderTaskDetail(detail));
  }));
}
