/** `cairn show ID`: one task with its outputs, approvals, checkpoints and runs, each run with its log's path. */
import { TaskNotFoundError } from '../errors.js';
import { stageLogsDir } from '../executors/stageLogPath.js';
import { withTaskStore } from './archivedTask.js';
import { parseTaskId, stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { renderTaskDetail } from './format.js';
import { taskDetailJson } from '../taskJson.js';

export async function run(idArg: string, opts: { json?: boolean; archived?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const id = parseTaskId(idArg);
  await withStore(global, (ctx) => withTaskStore(ctx, id, opts.archived, async (store) => {
    const logsDir = stageLogsDir(ctx.config.dataDir);
    const task = await store.getTask(id);
    if (!task) throw new TaskNotFoundError(id);
    const detail = taskDetailJson(task, await store.getCheckpoints(id), await store.getStageRuns(id), await store.listNotes({ taskId: id }), logsDir);
    io.out(opts.json ? JSON.stringify(detail) : renderTaskDetail(detail));
  }));
}
