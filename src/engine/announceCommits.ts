/**
 * Tells daemons on the same SQLite file about this process's commits, so they act on them at once
 * rather than at their next safety poll. Shared by the CLI's write verbs and the library.
 */
import type { Config } from '../config.js';
import { doorbellPath, ringDoorbell } from '../store/doorbell.js';
import { sqlitePath } from '../store/openStore.js';
import type { Engine } from './engine.js';

/** Events a daemon commits to run stages: the daemon that commits them acts on them itself. */
export const STAGE_EVENTS: ReadonlySet<string> = new Set(['START', 'STAGE_SUCCEEDED', 'STAGE_FAILED']);

/**
 * Rings the doorbell (../store/doorbell.ts) after each of `engine`'s commits of a user's event or a
 * new task: from the commit listener, so only after the commit, never before. Never throws or waits.
 * PostgreSQL's commits NOTIFY by themselves, so there it does nothing.
 */
export function announceCommits(engine: Engine, config: Config): void {
  if (config.store.kind !== 'sqlite') return;
  const doorbell = doorbellPath(sqlitePath(config));
  engine.onCommit((_task, event) => {
    if (!STAGE_EVENTS.has(event.type)) ringDoorbell(doorbell);
  });
}
