/**
 * Polling helpers every chaos scenario shares: wait for a condition with a deadline, and read tasks
 * straight from the database file (a read-only connection per poll: the scenario's own eyes, not
 * cairn's code, and no cairn process per check on a busy machine).
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { isTerminalState, type TaskState } from '../../machines/taskStates.js';
import type { Workspace } from '../helpers/cairnProcess.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns a value other than undefined/false; throws naming `what` after
 * `timeoutMs`. A probe that throws (a database being created, or busy) counts as "not yet"; the last
 * such error is named if time runs out.
 */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | false | Promise<T | undefined | false>, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await sleep(everyMs);
  }
}

/** Waits until every task in `ids` is terminal (read through the CLI); returns their final records. */
export async function waitTerminal(ws: Workspace, ids: number[], timeoutMs: number): Promise<any[]> {
  return waitFor(`tasks ${ids.join(', ')} to finish`, timeoutMs, () => {
    const tasks = ids.map((id) => ws.show(id));
    return tasks.every((t) => isTerminalState(t.state)) ? tasks : undefined;
  }, 200);
}

/** Runs `fn` on a short-lived read-only connection to the database file. */
export function readDb<T>(dbFile: string, fn: (db: import('better-sqlite3').Database) => T): T {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 10_000 });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

export interface TaskRow {
  id: number;
  request: string;
  state: TaskState;
  status: string;
  lease_owner: string | null;
}

/** Every task, oldest first; none while the database does not exist yet. */
export function readTasks(dbFile: string): TaskRow[] {
  if (!existsSync(dbFile)) return [];
  return readDb(dbFile, (db) => db.prepare('SELECT id, request, state, status, lease_owner FROM tasks ORDER BY id').all() as TaskRow[]);
}

/** Waits until at least `count` tasks exist and every one is terminal; returns them. */
export async function waitAllTerminal(dbFile: string, timeoutMs: number, count = 1): Promise<TaskRow[]> {
  return waitFor(`${count > 1 ? `${count} tasks` : 'every task'} to finish`, timeoutMs, () => {
    const tasks = readTasks(dbFile);
    return tasks.length >= count && tasks.every((t) => isTerminalState(t.state)) ? tasks : undefined;
  }, 100);
}
