/**
 * Waiting for a daemon to settle, read straight from the database file (a readonly connection per
 * poll: no cairn process per check, so polling stays cheap on a busy machine).
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';

export const TERMINAL_STATES = new Set(['completed', 'failed', 'cancelled']);

export interface TaskRow {
  id: number;
  state: string;
  request: string;
  lease_owner: string | null;
}

export function readTasks(dbFile: string): TaskRow[] {
  if (!existsSync(dbFile)) return [];
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return db.prepare('SELECT id, state, request, lease_owner FROM tasks ORDER BY id').all() as TaskRow[];
  } finally {
    db.close();
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value other than undefined; throws naming `what` at the deadline. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: T | undefined;
    try {
      value = check();
    } catch {
      value = undefined; // the database is being created or is busy: ask again
    }
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Waits until at least `count` tasks exist and every one is terminal; returns them. */
export function waitAllTerminal(dbFile: string, count: number, timeoutMs: number): Promise<TaskRow[]> {
  return waitFor(`${count} tasks to finish`, timeoutMs, () => {
    const tasks = readTasks(dbFile);
    return tasks.length >= count && tasks.every((t) => TERMINAL_STATES.has(t.state)) ? tasks : undefined;
  });
}
