/** `cairn list`: tasks, filtered, oldest first. */
import { TASK_STATES, TASK_STATUSES, type TaskState, type TaskStatus } from '../../machines/taskStates.js';
import { UsageError } from '../errors.js';
import { parsePositiveInt, stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { renderTaskList } from './format.js';
import { taskSummaryJson } from '../taskJson.js';

export interface ListOptions {
  status?: string;
  state?: string;
  tag?: string;
  resumable?: boolean;
  limit?: string;
  json?: boolean;
}

export async function run(opts: ListOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  if (opts.status && !TASK_STATUSES.includes(opts.status as TaskStatus)) {
    throw new UsageError(`--status ${opts.status} is not a status; use one of ${TASK_STATUSES.join(', ')}`);
  }
  if (opts.state && !TASK_STATES.includes(opts.state as TaskState)) {
    throw new UsageError(`--state ${opts.state} is not a state; use one of ${TASK_STATES.join(', ')}`);
  }
  const limit = opts.limit === undefined ? undefined : parsePositiveInt(opts.limit, '--limit');
  await withStore(global, async ({ store }) => {
    let tasks = await store.listTasks({
      status: opts.status as TaskStatus | undefined,
      state: opts.state as TaskState | undefined,
      tag: opts.tag,
      limit: opts.resumable ? undefined : limit,
    });
    if (opts.resumable) {
      const resumable = new Set((await store.findResumable(Date.now())).map((t) => t.id));
      tasks = tasks.filter((t) => resumable.has(t.id)).slice(0, limit);
    }
    io.out(opts.json ? JSON.stringify(tasks.map(taskSummaryJson)) : renderTaskList(tasks));
  });
}
