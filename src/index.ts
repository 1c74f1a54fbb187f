/**
 * The library API (DESIGN §7): the same engine the daemon and CLI use, importable.
 *
 *   const cairn = await openCairn({ dataDir, config: { approvals: { plan: 'auto' } }, executors: { plan: async (input) => … } });
 *   const task = await cairn.submit({ request: 'add authentication' });
 *   await cairn.start();   // run a daemon in this process
 */
import type { Logger } from 'pino';
import { pino } from 'pino';
import type { StageName } from '../machines/task.machine.js';
import { defaultConfig, type Config, type ConfigFile } from './config.js';
import { Daemon, type ResumePolicy, type StartReport } from './daemon/daemon.js';
import { Engine, type SubmitRequest } from './engine/engine.js';
import { announceCommits } from './engine/announceCommits.js';
import { resumeTask } from './engine/resumeTask.js';
import type { ModuleStageFn } from './executors/types.js';
import { openStore } from './store/openStore.js';
import { openStateBackend } from './state/openStateBackend.js';
import { bindNamespace, lazyBackend, type StateNamespace } from './state/stateNamespace.js';
import { attachViews } from './views/attachViews.js';
import type { Store, TaskFilter, TaskRecord, TransitionRecord } from './store/store.js';

export interface OpenCairnOptions {
  dataDir?: string;
  config?: ConfigFile | Config;
  /** Module executors as functions, per stage; they take precedence over config. */
  executors?: Partial<Record<StageName, ModuleStageFn>>;
  logger?: Logger;
  now?: () => number;
  /** Who the library's writes are recorded as. */
  actor?: string;
}

export interface Cairn {
  readonly config: Config;
  readonly store: Store;
  readonly engine: Engine;
  submit(request: SubmitRequest): Promise<TaskRecord>;
  get(id: number): Promise<TaskRecord>;
  list(filter?: TaskFilter): Promise<TaskRecord[]>;
  history(id: number): Promise<TransitionRecord[]>;
  approve(id: number, options?: { by?: string; comment?: string }): Promise<TaskRecord>;
  reject(id: number, reason: string, options?: { by?: string }): Promise<TaskRecord>;
  cancel(id: number, options?: { by?: string; reason?: string }): Promise<TaskRecord>;
  retry(id: number, options?: { by?: string }): Promise<TaskRecord>;
  resume(id: number): Promise<TaskRecord>;
  rewind(id: number, checkpoint: string, options?: { by?: string }): Promise<TaskRecord>;
  /** Starts a daemon in this process. */
  start(options?: { resume?: ResumePolicy; pollMs?: number }): Promise<StartReport>;
  /** Stops the daemon (if started) and closes the store. */
  stop(): Promise<void>;
  readonly daemon: Daemon | null;
  /** Key-value state of namespace `ns` (a task's is `task-<id>`) on the backend `config.state` selects. */
  state(ns: string): StateNamespace;
}

function isResolvedConfig(config: ConfigFile | Config | undefined): config is Config {
  return typeof config === 'object' && config !== null && 'baseDir' in config;
}

export async function openCairn(options: OpenCairnOptions = {}): Promise<Cairn> {
  const config = isResolvedConfig(options.config)
    ? { ...options.config, ...(options.dataDir ? { dataDir: options.dataDir } : {}) }
    : defaultConfig({ ...(options.config ?? {}), ...(options.dataDir ? { dataDir: options.dataDir } : {}) });
  const store = await openStore(config);
  // A library user keeps the store open like the daemon does: checkpoints belong off the commit path.
  store.checkpointInBackground?.(() => {});
  const now = options.now ?? Date.now;
  const engine = new Engine(store, config, now);
  // A daemon in another process (`cairn start`) hears this process's submits and decisions at once.
  announceCommits(engine, config);
  const logger = options.logger ?? pino({ level: 'silent' });
  const views = attachViews(engine, config, logger);
  const by = options.actor ?? 'library';
  const stateBackend = lazyBackend(() => openStateBackend(config, store));
  let daemon: Daemon | null = null;

  return {
    config,
    store,
    engine,
    get daemon() {
      return daemon;
    },
    submit: (request) => engine.submit(request, `user:${by}`),
    get: (id) => engine.getTask(id),
    list: (filter) => store.listTasks(filter),
    history: async (id) => {
      await engine.getTask(id);
      return store.getHistory(id);
    },
    approve: async (id, o = {}) => (await engine.approve(id, o.by ?? by, o.comment)).task,
    reject: async (id, reason, o = {}) => (await engine.reject(id, reason, o.by ?? by)).task,
    cancel: async (id, o = {}) => (await engine.cancel(id, o.by ?? by, o.reason)).task,
    retry: async (id, o = {}) => (await engine.retry(id, o.by ?? by)).task,
    resume: async (id) => (await resumeTask(engine, id, `user:${by}`)).task,
    rewind: async (id, checkpoint, o = {}) => (await engine.rewind(id, checkpoint, o.by ?? by)).task,
    state: (ns) => bindNamespace(stateBackend.get, ns),
    start: async (startOptions = {}) => {
      if (daemon) throw new Error('this cairn already runs a daemon');
      daemon = new Daemon({
        store,
        config,
        logger,
        engine,
        executors: options.executors,
        now,
        resume: startOptions.resume,
        pollMs: startOptions.pollMs,
      });
      return daemon.start();
    },
    stop: async () => {
      if (daemon) await daemon.stop();
      await views?.close();
      await stateBackend.close();
      await store.close();
    },
  };
}

export type { Config, ConfigFile } from './config.js';
export type { TaskRecord, TransitionRecord, TaskFilter } from './store/store.js';
export type { StageInput, ModuleStageFn, ModuleStageContext } from './executors/types.js';
export type { StateNamespace } from './state/stateNamespace.js';
export type { StateEntry, CheckpointInfo, JsonValue } from './state/stateBackend.js';
export { CairnError } from './errors.js';
