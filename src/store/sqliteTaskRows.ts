/**
 * A task row as the SQLite store reads it: with its dependencies in the same statement, as
 * `depends_on_json` (a JSON array in id order), so no read of a task needs a second query.
 */
import { toTaskWith, type TaskRow } from './rows.js';
import type { TaskRecord } from './store.js';

export type TaskRowWithDependencies = TaskRow & { depends_on_json: string };

function dependenciesOf(table: string): string {
  return `(SELECT json_group_array(depends_on ORDER BY depends_on) FROM task_dependencies deps
           WHERE deps.task_id = ${table}.id) AS depends_on_json`;
}

/** The columns for a SELECT over `tasks t`: `withDependencies('t')`. */
export function withDependencies(table: string): string {
  return `${table}.*, ${dependenciesOf(table)}`;
}

/** The columns for a RETURNING clause, which allows `*` but not `table.*`. */
export const WITH_DEPENDENCIES = `*, ${dependenciesOf('tasks')}`;

export function taskFromRow(row: TaskRowWithDependencies | undefined): TaskRecord | null {
  if (!row) return null;
  const json = row.depends_on_json;
  return toTaskWith(row, json === '[]' ? [] : (JSON.parse(json) as number[]));
}

/** Rows read with their dependencies (withDependencies / WITH_DEPENDENCIES). */
export function tasksFromRows(rows: TaskRowWithDependencies[]): TaskRecord[] {
  return rows.map((r) => taskFromRow(r)!);
}
