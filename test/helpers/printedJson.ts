/**
 * What `cairn show ID --json` and `cairn history ID --json` print, read as src/cli/show.ts and
 * history.ts read it but from a store the caller keeps open: a test comparing hundreds of tasks opens
 * its store once instead of once per call. Tests that use it also check, for a sample, that the verb
 * itself prints exactly the same.
 */
import { stageLogsDir } from '../../src/executors/stageLogPath.js';
import { historyJson, taskDetailJson } from '../../src/taskJson.js';
import type { Store } from '../../src/store/store.js';

/** `dataDir` is the data directory the verb would run with: show prints each run's log path under it. */
export async function showJsonOf(store: Store, id: number, dataDir: string): Promise<string> {
  const task = await store.getTask(id);
  if (!task) throw new Error(`task ${id} is not in the store`);
  const detail = taskDetailJson(task, await store.getCheckpoints(id), await store.getStageRuns(id), await store.listNotes({ taskId: id }), stageLogsDir(dataDir));
  return JSON.stringify(detail);
}

export async function historyJsonOf(store: Store, id: number): Promise<string> {
  if (!(await store.getTask(id))) throw new Error(`task ${id} is not in the store`);
  return JSON.stringify(historyJson(await store.getHistory(id)));
}
