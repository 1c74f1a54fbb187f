/**
 * The task records this engine last committed, kept as a first guess for the task's next step so a
 * transition needs no read before its write (on PostgreSQL that is one round trip fewer). A guess is
 * safe because every write is checked against the task's version: if anyone else wrote in between,
 * the commit is refused as a conflict and the step is recomputed from a fresh read.
 */
import { isTerminalState } from '../../machines/taskStates.js';
import type { TaskRecord } from '../store/store.js';

export class RecentTasks {
  private readonly tasks = new Map<number, TaskRecord>();

  constructor(private readonly capacity = 10_000) {}

  remember(task: TaskRecord): void {
    this.tasks.delete(task.id);
    if (isTerminalState(task.state)) return;
    this.tasks.set(task.id, task);
    // Oldest first: Map keeps insertion order.
    if (this.tasks.size > this.capacity) this.tasks.delete(this.tasks.keys().next().value!);
  }

  /** The remembered record, handed out once: a second caller reads the store. */
  take(id: number): TaskRecord | undefined {
    const task = this.tasks.get(id);
    if (task) this.tasks.delete(id);
    return task;
  }
}
