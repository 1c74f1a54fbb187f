/**
 * Opens the key-value state of one task's stage run: what the engine hands an executor as `state`.
 * Apart from stateNamespace.ts because it opens a backend, and so reaches the store whose connection
 * a SQLite or PostgreSQL backend shares; the executors import only the namespace interface.
 */
import type { Config } from '../config.js';
import type { Store } from '../store/store.js';
import { openStateBackend } from './openStateBackend.js';
import { bindNamespace, lazyBackend, taskNamespace, type TaskKeyValueState } from './stateNamespace.js';

/** The state of one task's stage run, opened lazily from the config (sharing `store`'s connection). Opens nothing until used. */
export function openTaskKeyValueState(config: Config, store: Store | undefined, taskId: number): TaskKeyValueState {
  const backend = lazyBackend(() => openStateBackend(config, store));
  return { ...bindNamespace(backend.get, taskNamespace(taskId)), close: backend.close };
}
