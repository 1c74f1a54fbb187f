/** Polling helpers the chaos scenarios share: wait for a condition with a deadline, settle tasks. */
import type { Workspace } from '../helpers/cairnProcess.js';
import Database from 'better-sqlite3';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value other than undefined/false; throws naming `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | false | Promise<T | undefined | false>, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/** Waits until every task in `ids` is terminal (read through the CLI); returns their final records. */
export async function waitTerminal(ws: Workspace, ids: number[], timeoutMs: number): Promise<any[]> {
  return waitFor(`tasks ${ids.join(', ')} to finish`, timeoutMs, () => {
    const tasks = ids.map((id) => ws.show(id));
    return tasks.every((t) => TERMINAL.has(t.status)) ? tasks : undefined;
  }, 200);
}

/** Runs `fn` on a short-lived read-only connection to the database file (the scenario's own eyes, not cairn's code). */
export function readDb<T>(dbFile: string, fn: (db: import('better-sqlite3').Database) => T): T {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5000 });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** Tasks' states straight from the database. */
export function taskStates(dbFile: string): { id: number; state: string; status: string }[] {
  return readDb(dbFile, (db) => db.prepare('SELECT id, state, status FROM tasks ORDER BY id').all() as { id: number; state: string; status: string }[]);
}

/** Waits until every task in the database is terminal, reading the file directly (cheaper than a CLI per poll). */
export async function waitAllTerminal(dbFile: string, timeoutMs: number): Promise<{ id: number; state: string; status: string }[]> {
  return waitFor('every task to finish', timeoutMs, () => {
    const tasks = taskStates(dbFile);
    return tasks.length > 0 && tasks.every((t) => TERMINAL.has(t.status)) ? tasks : undefined;
  }, 100);
}
