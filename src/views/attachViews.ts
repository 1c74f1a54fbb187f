/**
 * Connects the views to an engine: each committed change rewrites that task's view at once and
 * current.state shortly after (coalesced, so a burst of transitions costs one rewrite).
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Engine } from '../engine/engine.js';
import { toError } from '../errors.js';
import { Views } from './views.js';

export interface AttachedViews {
  views: Views;
  /** Writes whatever is still scheduled; call before a CLI process exits. */
  flush(): Promise<void>;
  /**
   * Writes whatever is still scheduled and ignores later commits: call before the store closes. A stage
   * that finished during a daemon's shutdown grace used to schedule a current.state write that ran after
   * the store closed and logged "The database connection is not open" on every such stop.
   */
  close(): Promise<void>;
}

const CURRENT_DELAY_MS = 100;

export function attachViews(engine: Engine, config: Config, logger?: Logger): AttachedViews | null {
  if (!config.views) return null;
  const views = new Views(engine.store, config.dataDir, config.heartbeat.staleAfter, engine.now);
  let timer: NodeJS.Timeout | null = null;
  let writing: Promise<void> = Promise.resolve();
  let isClosed = false;
  const report = (what: string) => (e: unknown) =>
    logger?.warn({ err: toError(e) }, `could not write ${what}: ${toError(e).message}; views are caches, \`cairn views rebuild\` rewrites them`);
  const writeCurrent = () => {
    timer = null;
    writing = views.writeCurrent().catch(report('current.state'));
  };
  engine.onCommit((task) => {
    if (isClosed) return;
    try {
      views.writeTask(task);
    } catch (e) {
      report(`the view of task ${task.id}`)(e);
    }
    timer ??= setTimeout(writeCurrent, CURRENT_DELAY_MS);
  });
  const flush = async () => {
    if (timer) {
      clearTimeout(timer);
      writeCurrent();
    }
    await writing;
  };
  return {
    views,
    flush,
    close: async () => {
      isClosed = true;
      await flush();
    },
  };
}
