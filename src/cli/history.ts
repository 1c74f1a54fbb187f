/** `cairn history ID`: every transition, oldest first. */
import { TaskNotFoundError } from '../errors.js';
import { parseTaskId, stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { historyJson, renderHistory } from './format.js';

export async function run(idArg: string, opts: { json?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const id = parseTaskId(idArg);
  await withStore(global, async ({ store }) => {
    if (!(await store.getTask(id))) throw new TaskNotFoundError(id);
    const history = await store.getHistory(id);
    io.out(opts.json ? JSON.stringify(historyJson(history)) : renderHistory(history));
  });
}
