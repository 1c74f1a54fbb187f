/**
 * `show`/`history --archived`: a task moved to a monthly history archive (history.keepDays) is read
 * from that archive with the same code that reads the live database, so it looks exactly as it did.
 */
import type { Config } from '../config.js';
import { TaskNotFoundError } from '../errors.js';
import type { Store } from '../store/store.js';

/**
 * Runs `fn` with the store that holds task `id`: the live one, or, with `archived`, the archive file
 * it was moved to. Without `archived`, a task that is only in an archive says where to look.
 */
export async function withTaskStore<T>(
  ctx: { config: Config; store: Store },
  id: number,
  archived: boolean | undefined,
  fn: (store: Store) => Promise<T>,
): Promise<T> {
  if ((await ctx.store.getTask(id)) || ctx.config.store.kind !== 'sqlite') return fn(ctx.store);
  const { findArchivedTaskFile } = await import('../snapshots/historyArchive.js');
  const { locationsOf, sqliteDbOf } = await import('../snapshots/locations.js');
  const file = findArchivedTaskFile(sqliteDbOf(ctx.store), locationsOf(ctx.config).archiveDir, id);
  if (!file) return fn(ctx.store); // not archived either: the caller's own "does not exist"
  if (!archived) {
    const error = new TaskNotFoundError(id);
    error.message = `task ${id} is no longer in the live database: it finished long ago and was moved to ${file}; \`--archived\` reads it there`;
    throw error;
  }
  const { openArchive } = await import('../snapshots/historyArchive.js');
  const archive = openArchive(file);
  try {
    return await fn(archive);
  } finally {
    await archive.close();
  }
}
