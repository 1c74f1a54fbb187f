/**
 * A backend bound to one namespace: what module stages get as `ctx.state` (their task's namespace)
 * and what the library's `cairn.state(ns)` returns. The backend is opened on first use, so a stage
 * that never touches its state never connects to Redis.
 *
 * Only the interface and pure binders live here; opening a backend (which knows the store) is in
 * openTaskKeyValueState.ts and openStateBackend.ts, so the executors that take a namespace never load the store.
 */
import { StateBackendError } from '../errors.js';
import { assertName, type CheckpointInfo, type JsonValue, type StateBackend, type StateEntry } from './stateBackend.js';

export interface StateNamespace {
  readonly ns: string;
  /** The value, or undefined when the key is not set. */
  get<T extends JsonValue = JsonValue>(key: string): Promise<T | undefined>;
  /** The value with its timestamp, or null. */
  entry(key: string): Promise<StateEntry | null>;
  set(key: string, value: JsonValue): Promise<StateEntry>;
  del(key: string): Promise<boolean>;
  list(): Promise<StateEntry[]>;
  checkpoint(name: string): Promise<CheckpointInfo>;
  restore(name: string): Promise<CheckpointInfo>;
  checkpoints(): Promise<CheckpointInfo[]>;
}

/** The namespace of a task's state: `task-<id>` (what CAIRN_STATE_NS holds for its stage programs). Pure. */
export function taskNamespace(taskId: number): string {
  return `task-${taskId}`;
}

/** Binds `ns` to the backend `getBackend` resolves (called on each use; cache it there). Pure until used. */
export function bindNamespace(getBackend: () => Promise<StateBackend>, ns: string): StateNamespace {
  assertName('namespace', ns);
  return {
    ns,
    get: async <T extends JsonValue = JsonValue>(key: string) => {
      const entry = await (await getBackend()).get(ns, key);
      return entry ? (entry.value as T) : undefined;
    },
    entry: async (key) => (await getBackend()).get(ns, key),
    set: async (key, value) => (await getBackend()).set(ns, key, value),
    del: async (key) => (await getBackend()).del(ns, key),
    list: async () => (await getBackend()).list(ns),
    checkpoint: async (name) => (await getBackend()).checkpoint(ns, name),
    restore: async (name) => (await getBackend()).restore(ns, name),
    checkpoints: async () => (await getBackend()).checkpoints(ns),
  };
}

/** Opens a backend once, on first call; `close()` closes it if it was opened. */
export function lazyBackend(open: () => Promise<StateBackend>): { get: () => Promise<StateBackend>; close: () => Promise<void> } {
  let opened: Promise<StateBackend> | null = null;
  let isClosed = false;
  return {
    get: () => {
      if (isClosed) return Promise.reject(new StateBackendError('the key-value state was used after its stage run or library instance ended; use it only while the stage runs'));
      if (!opened) {
        const attempt = open();
        opened = attempt;
        // A failed open (Redis down) is not kept: the next use tries again.
        attempt.catch(() => {
          if (opened === attempt) opened = null;
        });
      }
      return opened;
    },
    close: async () => {
      isClosed = true;
      const backend = await opened?.catch(() => null);
      opened = null;
      await backend?.close();
    },
  };
}

export interface TaskKeyValueState extends StateNamespace {
  /** Closes the backend if this handle opened it (a Redis connection); the handle is unusable after. */
  close(): Promise<void>;
}
