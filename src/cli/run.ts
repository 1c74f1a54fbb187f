/**
 * `cairn run "<request>"` / `cairn run --resume ID`: drives one task in the foreground until it
 * completes, fails, or stops at an approval gate, then says what to do next.
 */
import { once } from 'node:events';
import { isTerminalState } from '../../machines/taskStates.js';
import { UsageError } from '../errors.js';
import { stageLogsDir } from '../executors/stageLogPath.js';
import type { TaskRecord } from '../store/store.js';
import { actorName, loadCliConfig, parseTaskId, stdio, type GlobalOptions, type Output } from './context.js';
import { assertStagesConfigured, createDaemon, runUntilStopped } from './daemonProcess.js';
import { taskDetailJson } from '../taskJson.js';

export interface RunOptions {
  resume?: string;
  priority?: string;
  tag?: string[];
  json?: boolean;
}

const isSettled = (task: TaskRecord) => isTerminalState(task.state) || task.status === 'awaiting_approval';

function summary(task: TaskRecord): string {
  switch (task.state) {
    case 'completed':
      return `task ${task.id} completed`;
    case 'failed':
      return `task ${task.id} failed: ${task.snapshot.context.error?.message ?? 'see `cairn show ' + task.id + '`'}; \`cairn retry ${task.id}\` tries the failed stage again`;
    case 'cancelled':
      return `task ${task.id} was cancelled`;
    default:
      return `task ${task.id} is ${task.state}: approve with \`cairn approve ${task.id}\` (or reject with --reason), then continue with \`cairn run --resume ${task.id}\``;
  }
}

export async function run(request: string | undefined, opts: RunOptions, global: GlobalOptions, io: Output = stdio): Promise<number> {
  if (!request && !opts.resume) throw new UsageError('run needs a request ("cairn run \\"add a README\\"") or --resume ID');
  if (request && opts.resume) throw new UsageError('give run either a request or --resume ID, not both');
  const config = await loadCliConfig(global);
  assertStagesConfigured(config);
  const { openStore } = await import('../store/openStore.js');
  const { Engine } = await import('../engine/engine.js');
  const store = await openStore(config, { verify: true });
  try {
    const engine = new Engine(store, config);
    const id = opts.resume
      ? (await engine.getTask(parseTaskId(opts.resume))).id
      : (await engine.submit({ request: request!, priority: opts.priority as never, tags: opts.tag }, `user:${actorName()}`)).id;
    let task = await engine.getTask(id);
    if (!isSettled(task)) {
      const daemon = await createDaemon({ store, config, engine, onlyTaskIds: [id], resume: [id], logTo: 2 });
      const settled = (async () => {
        for (;;) {
          task = await engine.getTask(id);
          if (isSettled(task)) return;
          await Promise.race([once(daemon, 'transition'), new Promise((r) => setTimeout(r, 200))]);
        }
      })();
      const stopped = runUntilStopped(daemon, settled);
      await daemon.start();
      const code = await stopped;
      if (code !== 0) return code;
      task = await engine.getTask(id);
    }
    if (opts.json) io.out(JSON.stringify(taskDetailJson(task, await store.getCheckpoints(id), await store.getStageRuns(id), [], stageLogsDir(config.dataDir))));
    else io.out(summary(task));
    return task.state === 'failed' || task.state === 'cancelled' ? 1 : 0;
  } finally {
    await store.close();
  }
}
