/**
 * Decisions and insights a stage reported in its JSON output (`{"decisions": [...], "insights": [...]}`),
 * as notes to record with the stage's result. Entries are strings or objects naming the text
 * (`decision`/`insight`/`text`) with optional rationale, impact and category. Pure.
 */
import type { StageName } from '../../machines/taskStates.js';
import type { NewNote, NoteKind } from '../store/store.js';

function str(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function entriesOf(output: unknown, key: 'decisions' | 'insights'): unknown[] {
  if (typeof output !== 'object' || output === null) return [];
  const list = (output as Record<string, unknown>)[key];
  return Array.isArray(list) ? list : [];
}

export function notesFromStageOutput(
  output: unknown,
  where: { taskId: number; stage: StageName; attempt: number; actor: string; at: number },
): NewNote[] {
  const notes: NewNote[] = [];
  for (const [key, kind] of [['decisions', 'decision'], ['insights', 'insight']] as const) {
    for (const entry of entriesOf(output, key)) {
      const fields = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>) : {};
      const text = typeof entry === 'string' ? entry : str(fields[kind] ?? fields.text);
      if (!text) continue; // an entry with no text says nothing worth keeping
      notes.push({
        taskId: where.taskId,
        scope: null,
        kind: kind as NoteKind,
        text,
        rationale: str(fields.rationale),
        impact: str(fields.impact),
        category: str(fields.category),
        stage: where.stage,
        attempt: where.attempt,
        source: 'stage',
        actor: where.actor,
        at: where.at,
      });
    }
  }
  return notes;
}
