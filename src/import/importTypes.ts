/** What the legacy readers hand the importer: tasks to insert once, notes to keep, or a skip with its reason. */
import type { TaskPolicy } from '../../machines/task.machine.js';
import type { ImportedTask, IntakeKey, NewNote } from '../store/store.js';

export interface ImportContext {
  policy: TaskPolicy;
  /** The ended session that interrupted stages of imported tasks belong to. */
  sessionId: string;
  now: number;
}

export type ImportItem =
  | {
      kind: 'task';
      label: string;
      intake: IntakeKey;
      task: ImportedTask;
      /** Intake keys of items this task depends on, resolved to task ids when it is inserted. */
      dependsOnKeys?: IntakeKey[];
      /** Where other items refer to this one (an experiment's "t1"). */
      ref?: string;
      notes?: (id: number) => NewNote[];
    }
  | { kind: 'notes'; label: string; intake: IntakeKey; notes: (refs: Map<string, number>) => NewNote[] }
  | { kind: 'skip'; label: string; reason: string };
