/** Rebuilds a task's snapshot from its stored transitions: the proof that history and state agree. Pure. */
import type { TaskEvent, TaskPolicy } from '../../machines/task.machine.js';
import type { PersistedSnapshot, TransitionRecord } from '../store/store.js';
import { initialSnapshot, step, toPersisted } from './snapshot.js';

export function replayHistory(history: TransitionRecord[]): PersistedSnapshot {
  const [first, ...rest] = history;
  if (!first || first.event.type !== 'SUBMIT') throw new Error('history does not start with SUBMIT');
  let snapshot = initialSnapshot(first.event.policy as TaskPolicy).snapshot;
  for (const record of rest) {
    const result = step(snapshot, record.event as unknown as TaskEvent);
    if (!result) throw new Error(`transition ${record.seq} (${record.event.type}) is refused by the machine when replayed`);
    snapshot = result.next;
  }
  return toPersisted(snapshot);
}
