/**
 * Bringing a workspace to rest after a fault: run a fresh daemon until no task is running or
 * queued (every task terminal or at a human gate, no lease held), then stop it. Reads the database
 * directly, read-only, so the check does not depend on the code under test.
 */
import type { Workspace } from '../helpers/cairnProcess.js';
import { readTasks, sleep, type TaskRow } from './waitFor.js';

/** Polls `check` until it holds; throws naming `what` (and the last `detail`) when time runs out. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s${detail() ? `: ${detail()}` : ''}`);
    await sleep(50);
  }
}

const AT_REST = new Set(['completed', 'failed', 'cancelled', 'plan_awaiting_approval', 'implementation_awaiting_approval']);

export function isAtRest(tasks: TaskRow[]): boolean {
  return tasks.every((t) => AT_REST.has(t.state) && t.lease_owner === null);
}

/** "completed 12, implementing 1" */
export function describeStates(tasks: TaskRow[]): string {
  const counts = new Map<string, number>();
  for (const t of tasks) counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
  return [...counts].map(([s, n]) => `${s} ${n}`).join(', ') || 'no tasks';
}

/**
 * Starts a daemon on the workspace, waits until every task is at rest (and `isAlsoDone`, e.g. the
 * inbox is empty), then stops it with SIGTERM.
 * Throws (after a kill -9) when the tasks do not come to rest in time. Returns the tasks.
 */
export async function runUntilSettled(ws: Workspace, timeoutMs: number, isAlsoDone: () => boolean = () => true): Promise<TaskRow[]> {
  const daemon = ws.startDaemon();
  try {
    await daemon.waitForLog(/cairn daemon started/, timeoutMs);
    await waitUntil(
      () => isAlsoDone() && isAtRest(readTasks(ws.dbFile)),
      timeoutMs,
      'every task coming to rest',
      () => describeStates(readTasks(ws.dbFile)),
    );
  } catch (e) {
    await daemon.kill('SIGKILL');
    throw e;
  }
  const exit = await daemon.kill('SIGTERM');
  if (exit.code !== 0) throw new Error(`the settling daemon exited with ${exit.code ?? exit.signal} on SIGTERM; stderr: ${daemon.stderr}`);
  return readTasks(ws.dbFile);
}
