/**
 * The UPDATE of a task row after a transition, and the record it leaves.
 *
 * The statement names only the indexed columns whose value changes: SQLite rewrites the entry of every
 * index whose column is in the SET list, changed or not. Most transitions keep the task's status
 * (tasks_status), and a stage result that claims the next run for the session already holding the
 * lease keeps its holder (tasks_leased). One prepared statement per shape of SET list.
 *
 * It has no RETURNING clause: RETURNING makes SQLite run the UPDATE in two passes through a temporary
 * table, and it cost twice the UPDATE itself. The record after the write is known without reading it:
 * the write names every column it changes, the guard read the lease in the same transaction, and the
 * rest of the row (request, priority, tags, dependencies, creation time) never changes.
 */
import type Database from 'better-sqlite3';
import { taskFromValues } from './rows.js';
import type { TaskRecord, TransitionWrite } from './store.js';

/** The task row's current values, read by the write's guard in the same transaction. */
export interface TaskGuard {
  version: number;
  status: string;
  lease_owner: string | null;
  lease_token: number;
}

/** The lease the write gives the task's next run, when it claims it. */
export interface NextLease {
  owner: string;
  expiresAt: number;
}

export class SqliteTaskUpdate {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  /** Applies the write to the task row, whose version the guard has just checked; returns the record after. */
  run(w: TransitionWrite, current: TaskGuard, snapshot: string, lease: NextLease | null): TaskRecord {
    const sets: string[] = [];
    const values: unknown[] = [];
    const set = (fragment: string, ...v: unknown[]) => {
      sets.push(fragment);
      values.push(...v);
    };
    const next = w.nextRun;
    set('state = ?', w.to);
    if (w.status !== current.status) set('status = ?', w.status);
    set('snapshot = ?', snapshot);
    set('version = version + 1');
    set('run_stage = ?, run_attempt = ?, run_after = ?', next?.stage ?? null, next?.attempt ?? null, next?.notBefore ?? null);
    if (lease) {
      if (lease.owner !== current.lease_owner) set('lease_owner = ?', lease.owner);
      set('lease_expires_at = ?, lease_token = lease_token + 1', lease.expiresAt);
    } else {
      if (current.lease_owner !== null) set('lease_owner = NULL');
      set('lease_expires_at = NULL');
    }
    set('updated_at = ?', w.at);
    const setList = sets.join(', ');
    let statement = this.statements.get(setList);
    if (!statement) {
      statement = this.db.prepare(`UPDATE tasks SET ${setList} WHERE id = ? AND version = ?`);
      this.statements.set(setList, statement);
    }
    if (statement.run(...values, w.taskId, current.version).changes !== 1) {
      throw new Error(`task ${w.taskId} changed within its own write transaction (version ${current.version})`);
    }
    const b = w.before;
    return taskFromValues({
      id: w.taskId,
      request: b.request,
      priority: b.priority,
      tags: b.tags,
      dependsOn: b.dependsOn,
      state: w.to,
      status: w.status,
      version: current.version + 1,
      runStage: next?.stage ?? null,
      runAttempt: next?.attempt ?? null,
      runAfter: next?.notBefore ?? null,
      lease: lease ? { owner: lease.owner, expiresAt: lease.expiresAt, token: current.lease_token + 1 } : null,
      createdAt: b.createdAt,
      updatedAt: w.at,
    }, w.snapshot);
  }
}
