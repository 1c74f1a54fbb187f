/**
 * Keeps the zero-parse views under the data directory in step with the database. They are caches:
 * deleting them loses nothing, and `rebuild()` writes them all again from the store.
 *   tasks/<id>.state      written after each committed transition of that task
 *   current.state         daemon and counts, refreshed after transitions and on the heartbeat
 *   status/*.md           current-state, next-steps and blockers, refreshed on the heartbeat and rebuild
 */
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { isSessionGone } from '../process/sessions.js';
import { ensurePrivateDir } from '../store/sqlite.js';
import type { Store, TaskRecord } from '../store/store.js';
import {
  renderBlockersMd,
  renderCurrentState,
  renderCurrentStateMd,
  renderNextStepsMd,
  renderTaskState,
  type CurrentState,
} from './renderViews.js';
import { writeFileAtomic } from '../writeFileAtomic.js';

/** The views are caches rebuilt from the store: atomic, but not fsynced (a power cut costs a rebuild, not data). */
const CACHE = { fsync: false };

export class Views {
  private readonly tasksDir: string;
  private readonly statusDir: string;

  constructor(
    private readonly store: Store,
    private readonly dataDir: string,
    private readonly staleAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tasksDir = path.join(dataDir, 'tasks');
    this.statusDir = path.join(dataDir, 'status');
  }

  /** Writes one task's view. Synchronous so it is on disk before the caller moves on. */
  writeTask(task: TaskRecord): void {
    ensurePrivateDir(this.tasksDir);
    writeFileAtomic(path.join(this.tasksDir, `${task.id}.state`), renderTaskState(task), CACHE);
  }

  private async currentState(): Promise<CurrentState> {
    const now = this.now();
    const sessions = await this.store.listSessions();
    const live = sessions.find((s) => !isSessionGone(s, now, this.staleAfterMs)) ?? null;
    const counts = await this.store.countByStatus();
    return {
      session: live ?? sessions[0] ?? null,
      isRunning: live !== null,
      running: counts.in_progress ?? 0,
      waiting: counts.awaiting_approval ?? 0,
      pending: counts.pending ?? 0,
      failed: counts.failed ?? 0,
      at: now,
    };
  }

  async writeCurrent(): Promise<void> {
    ensurePrivateDir(this.dataDir);
    writeFileAtomic(path.join(this.dataDir, 'current.state'), renderCurrentState(await this.currentState()), CACHE);
  }

  async writeMarkdown(): Promise<void> {
    const current = await this.currentState();
    const [inProgress, awaiting, pending, failed, sessions] = await Promise.all([
      this.store.listTasks({ status: 'in_progress' }),
      this.store.listTasks({ status: 'awaiting_approval' }),
      this.store.findDispatchable(1_000_000),
      this.store.listTasks({ status: 'failed' }),
      this.store.listSessions(),
    ]);
    // Pending tasks whose dependencies are not done yet are not dispatchable; list them after the rest.
    const allPending = await this.store.listTasks({ status: 'pending' });
    const ready = new Set(pending.map((t) => t.id));
    const ordered = [...pending, ...allPending.filter((t) => !ready.has(t.id))];
    const deps = await this.store.listTasks({ ids: [...new Set(ordered.flatMap((t) => t.dependsOn))] });
    const stale = sessions.filter((s) => s.status === 'stale' || s.status === 'crashed').slice(0, 20);
    ensurePrivateDir(this.statusDir);
    writeFileAtomic(path.join(this.statusDir, 'current-state.md'), renderCurrentStateMd(current, inProgress, awaiting), CACHE);
    writeFileAtomic(path.join(this.statusDir, 'next-steps.md'), renderNextStepsMd(ordered, new Map(deps.map((t) => [t.id, t])), current.at), CACHE);
    writeFileAtomic(path.join(this.statusDir, 'blockers.md'), renderBlockersMd(failed, awaiting, stale, current.at), CACHE);
  }

  /** Writes every view again from the store, removing views of tasks that no longer exist. */
  async rebuild(): Promise<{ tasks: number }> {
    const tasks = await this.store.listTasks();
    ensurePrivateDir(this.tasksDir);
    const keep = new Set(tasks.map((t) => `${t.id}.state`));
    for (const file of readdirSync(this.tasksDir)) {
      if (file.endsWith('.state') && !keep.has(file)) rmSync(path.join(this.tasksDir, file), { force: true });
    }
    for (const task of tasks) this.writeTask(task);
    await this.writeCurrent();
    await this.writeMarkdown();
    return { tasks: tasks.length };
  }
}
