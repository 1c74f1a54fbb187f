/** Converting between live machine snapshots and what the store keeps. Pure. */
import { initialTransition, transition } from 'xstate';
import { taskMachine, type TaskContext, type TaskEvent, type TaskPolicy, type TaskState } from '../../machines/task.machine.js';
import type { Config } from '../config.js';
import type { PersistedSnapshot } from '../store/store.js';

export type TaskSnapshot = ReturnType<typeof initialTransition<typeof taskMachine>>[0];
export type MachineAction = { type: string; params?: unknown };

export function toPersisted(snapshot: TaskSnapshot): PersistedSnapshot {
  return { value: snapshot.value as TaskState, context: snapshot.context as TaskContext };
}

export function restoreSnapshot(persisted: PersistedSnapshot): TaskSnapshot {
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
  const [snapshot, actions] = initialTransition(taskMachine, { policy });
  return { snapshot, actions: actions as MachineAction[] };
}

/** The machine's verdict on one event: null when no transition is enabled (the event is refused). */
export function step(snapshot: TaskSnapshot, event: TaskEvent): { next: TaskSnapshot; actions: MachineAction[] } | null {
  if (!snapshot.can(event)) return null;
  const [next, actions] = transition(taskMachine, snapshot, event);
  return { next, actions: actions as MachineAction[] };
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
