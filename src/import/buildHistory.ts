/**
 * Builds an imported task's stored history by running the machine over events the importer
 * synthesised from the legacy record: the same transitions, checkpoints and stage runs the engine
 * would have stored had cairn run the task. So `history` reads naturally and replay reproduces the
 * snapshot. Pure.
 */
import { statusOfState, type StageName, type TaskEvent, type TaskPolicy, type TaskState } from '../../machines/task.machine.js';
import { checkpointsNamed, initialSnapshot, runRequested, step, toPersisted } from '../engine/snapshot.js';
import type { ImportedTask, Priority } from '../store/store.js';

export interface HistoryInput {
  request: string;
  priority: Priority;
  tags: string[];
  dependsOn: number[];
  policy: TaskPolicy;
  createdAt: number;
  /** When the legacy record last changed, if later than its last event. */
  updatedAt?: number;
  /** Kept in the SUBMIT event, so the legacy record stays readable in `cairn history`. */
  importedFrom: Record<string, unknown>;
  steps: { event: TaskEvent; actor: string }[];
  /** When the last requested stage run was under way in the old tool: the ended session that ran it. */
  interrupted?: { sessionId: string; at: number };
}

export function buildImportedHistory(input: HistoryInput): ImportedTask {
  const { snapshot: initial, actions: initialActions } = initialSnapshot(input.policy);
  const submit = {
    type: 'SUBMIT',
    request: input.request,
    priority: input.priority,
    tags: input.tags,
    depends_on: input.dependsOn,
    policy: input.policy,
    imported_from: input.importedFrom,
  };
  const transitions: ImportedTask['transitions'] = [{ from: null, to: 'pending', event: submit, actor: 'import', at: input.createdAt }];
  const checkpoints: ImportedTask['checkpoints'] = checkpointsNamed(initialActions).map((name) => ({
    name,
    state: 'pending' as TaskState,
    snapshot: toPersisted(initial),
    at: input.createdAt,
    transitionIndex: 0,
  }));
  const runs: ImportedTask['runs'] = [];
  let snapshot = initial;
  let nextRun: ImportedTask['nextRun'] = null;
  let runStartedAt = input.createdAt;
  for (const { event, actor } of input.steps) {
    const result = step(snapshot, event);
    if (!result) throw new Error(`the legacy record cannot be replayed: ${event.type} does not apply at ${String(snapshot.value)}`);
    const from = snapshot.value as TaskState;
    snapshot = result.next;
    const to = snapshot.value as TaskState;
    transitions.push({ from, to, event: event as unknown as ImportedTask['transitions'][number]['event'], actor, at: event.at });
    for (const name of checkpointsNamed(result.actions)) {
      checkpoints.push({ name, state: to, snapshot: toPersisted(snapshot), at: event.at, transitionIndex: transitions.length - 1 });
    }
    if (event.type === 'STAGE_SUCCEEDED' || event.type === 'STAGE_FAILED') {
      runs.push({
        stage: event.stage,
        attempt: event.attempt,
        startedAt: runStartedAt,
        finishedAt: event.at,
        outcome: event.type === 'STAGE_SUCCEEDED' ? 'succeeded' : 'failed',
        exitCode: event.type === 'STAGE_FAILED' ? (event.exitCode ?? null) : 0,
      });
    }
    const requested = runRequested(result.actions);
    if (requested) {
      nextRun = requested;
      runStartedAt = event.at;
    } else if (from !== to) {
      nextRun = null;
    }
  }
  const state = snapshot.value as TaskState;
  let lease: ImportedTask['lease'] = null;
  if (input.interrupted && nextRun) {
    runs.push({ stage: nextRun.stage as StageName, attempt: nextRun.attempt, startedAt: input.interrupted.at, finishedAt: null, outcome: null, exitCode: null });
    lease = { owner: input.interrupted.sessionId, expiresAt: input.interrupted.at };
  }
  return {
    request: input.request,
    priority: input.priority,
    tags: input.tags,
    dependsOn: input.dependsOn,
    transitions,
    checkpoints,
    runs,
    state,
    status: statusOfState(state),
    snapshot: toPersisted(snapshot),
    nextRun,
    lease,
    createdAt: input.createdAt,
    updatedAt: Math.max(transitions.at(-1)!.at, input.updatedAt ?? 0),
  };
}
