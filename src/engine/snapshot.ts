/** Converting between live machine snapshots and what the store keeps. Pure. */
import { createActor } from 'xstate';
import { taskMachine, type TaskContext, type TaskEvent, type TaskPolicy, type TaskState } from '../../machines/task.machine.js';
import type { Config } from '../config.js';
import type { PersistedSnapshot } from '../store/store.js';

export type TaskSnapshot = ReturnType<typeof taskMachine.resolveState>;
export type MachineAction = { type: string; params?: unknown };
type ActorScope = Parameters<typeof taskMachine.transition>[2];

/**
 * One inert actor scope for every pure step. xstate's `transition()` builds a throwaway actor per call
 * (computing, and here failing, an initial state without input), which cost more than the step itself.
 * The scope only collects the actions a step names; nothing is executed.
 */
let collected: MachineAction[] = [];
let scope: ActorScope | undefined;
function inertScope(): ActorScope {
  if (!scope) {
    const self = createActor(taskMachine, { input: { policy: undefined as unknown as TaskPolicy } });
    scope = {
      self,
      defer: () => {},
      id: '',
      logger: () => {},
      sessionId: '',
      stopChild: () => {},
      system: self.system,
      emit: () => {},
      actionExecutor: (action) => {
        collected.push(action as MachineAction);
      },
    } as ActorScope;
  }
  return scope;
}

function collectActions<T>(run: () => T): { result: T; actions: MachineAction[] } {
  collected = [];
  try {
    const result = run();
    return { result, actions: collected };
  } finally {
    collected = [];
  }
}

export function toPersisted(snapshot: TaskSnapshot): PersistedSnapshot {
  return { value: snapshot.value as TaskState, context: snapshot.context as TaskContext };
}

/** A task's machine snapshot from what the store keeps (not a database snapshot: see snapshots/). Pure. */
export function restoreTaskSnapshot(persisted: PersistedSnapshot): TaskSnapshot {
  return taskMachine.resolveState({ value: persisted.value, context: persisted.context });
}

/** The rules a new task runs under, taken from config when it is submitted. */
export function policyFromConfig(config: Config): TaskPolicy {
  return {
    approvals: { plan: config.approvals.plan, implementation: config.approvals.implementation },
    stageAttempts: config.limits.stageAttempts,
    reviewCycles: config.limits.reviewCycles,
    verifyCycles: config.limits.verifyCycles,
    backoffBaseMs: config.limits.retryBackoff,
    backoffMaxMs: config.limits.retryBackoffMax,
  };
}

export function initialSnapshot(policy: TaskPolicy): { snapshot: TaskSnapshot; actions: MachineAction[] } {
  const { result: snapshot, actions } = collectActions(() => taskMachine.getInitialSnapshot(inertScope(), { policy }));
  return { snapshot, actions };
}

/** The machine's verdict on one event: null when no transition is enabled (the event is refused). */
export function step(snapshot: TaskSnapshot, event: TaskEvent): { next: TaskSnapshot; actions: MachineAction[] } | null {
  if (!snapshot.can(event)) return null;
  const { result: next, actions } = collectActions(() => taskMachine.transition(snapshot, event, inertScope()));
  return { next, actions };
}

export function checkpointsNamed(actions: MachineAction[]) {
  return actions
    .filter((a) => a.type === 'checkpoint')
    .map((a) => (a.params as { name: import('../../machines/task.machine.js').CheckpointName }).name);
}

export function runRequested(actions: MachineAction[]) {
  const run = actions.find((a) => a.type === 'runStage');
  return run ? (run.params as { stage: import('../../machines/task.machine.js').StageName; attempt: number; notBefore: number | null }) : null;
}
