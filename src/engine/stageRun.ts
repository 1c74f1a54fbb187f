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
const EXPECTED_VERDICT = '{"verdict":"approve"|"request_changes","comments":"…"}';
/** How much of a wrong review output the failure message shows. */
const SHOWN_BYTES = 200;

/** The first `bytes` bytes of `text`, cut at a character boundary. Pure. */
function firstBytes(text: string, bytes: number): string {
  const buffer = Buffer.from(text);
  if (buffer.length <= bytes) return text;
  let end = bytes;
  while (end > 0 && (buffer[end] & 0xc0) === 0x80) end--; // not inside a UTF-8 sequence
  return `${buffer.subarray(0, end).toString('utf8')}…`;
}

/** A review must give a verdict; anything else is that run's failure, not an approval. */
function reviewProblem(output: unknown, source: 'stdout' | 'file' | undefined): string | null {
  const verdict = (output as { verdict?: unknown } | null)?.verdict;
  if (typeof output === 'object' && output !== null && VERDICTS.includes(verdict as string)) return null;
  const shown = typeof output === 'string' ? output : JSON.stringify(output);
  const got = output === null ? 'nothing' : firstBytes(String(shown), SHOWN_BYTES);
  if (source === 'file') return `review wrote no verdict to its CAIRN_OUTPUT file; it must write ${EXPECTED_VERDICT} (it wrote: ${got})`;
  if (source === 'stdout') {
    return (
      `review printed no verdict; it must print ${EXPECTED_VERDICT}, or write it to the file named by $CAIRN_OUTPUT ` +
      `when its stdout carries anything else (it printed: ${got})`
    );
  }
  return `review returned no verdict; it must return ${EXPECTED_VERDICT} (it returned: ${got})`;
}

export function toStageEvent(
  stage: StageName,
  attempt: number,
  result: Exclude<StageResult, { ok: false; reason: 'aborted' }>,
  at: number,
): Extract<TaskEvent, { type: 'STAGE_SUCCEEDED' | 'STAGE_FAILED' }> {
  if (result.ok) {
    const problem = stage === 'review' ? reviewProblem(result.output, result.outputSource) : null;
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
