/** `cairn history ID`: every transition, oldest first. */
import { TaskNotFoundError } from '../errors.js';
import { withTaskStore } from './archivedTask.js';
import { parseTaskId, stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { renderHistory } from './format.js';
import { historyJson } from '../taskJson.js';

export async function run(idArg: string, opts: { json?: boolean; archived?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const id = parseTaskId(idArg);
  await withStore(global, (ctx) => withTaskStore(ctx, id, opts.archived, async (store) => {
    if (!(await store.getTask(id))) throw new TaskNotFoundError(id);
    const history = await store.getHistory(id);
    io.out(opts.json ? JSON.stringify(historyJson(history)) : renderHistory(history));
  }));
}
