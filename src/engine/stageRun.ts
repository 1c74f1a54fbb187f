/** The stage input handed to a run, and the machine event its result becomes. Pure. */
import type { StageName, TaskEvent } from '../../machines/task.machine.js';
import type { StageInput, StageResult } from '../executors/types.js';
import type { TaskRecord } from '../store/store.js';

export function buildStageInput(task: TaskRecord, stage: StageName, attempt: number, runId: string): StageInput {
  const context = task.snapshot.context;
  return {
    task_id: task.id,
    request: task.request,
    priority: task.priority,
    tags: task.tags,
    depends_on: task.dependsOn,
    stage,
    attempt,
    run_id: runId,
    outputs: context.outputs,
    feedback: context.feedback,
  };
}

const VERDICTS = ['approve', 'request_changes'];

/** A review must print a verdict; anything else is that run's failure, not an approval. */
function reviewProblem(output: unknown): string | null {
  const verdict = (output as { verdict?: unknown } | null)?.verdict;
  if (typeof output === 'object' && output !== null && VERDICTS.includes(verdict as string)) return null;
  const shown = typeof output === 'string' ? output : JSON.stringify(output);
  return (
    'review printed no verdict; it must print {"verdict":"approve"|"request_changes","comments":"…"} ' +
    `(it printed: ${String(shown).slice(0, 200)})`
  );
}

export function toStageEvent(
  stage: StageName,
  attempt: number,
  result: Exclude<StageResult, { ok: false; reason: 'aborted' }>,
  at: number,
): Extract<TaskEvent, { type: 'STAGE_SUCCEEDED' | 'STAGE_FAILED' }> {
  if (result.ok) {
    const problem = stage === 'review' ? reviewProblem(result.output) : null;
    if (problem) {
      return { type: 'STAGE_FAILED', stage, attempt, reason: 'output', message: problem, exitCode: 0, signal: null, at };
    }
    return { type: 'STAGE_SUCCEEDED', stage, attempt, output: result.output, at };
  }
  return {
    type: 'STAGE_FAILED',
    stage,
    attempt,
    reason: result.reason as Exclude<typeof result.reason, 'aborted'>,
    message: result.message,
    exitCode: result.exitCode,
    signal: result.signal,
    output: result.output?.trim() || undefined,
    at,
  };
}
