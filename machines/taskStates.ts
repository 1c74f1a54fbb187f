/**
 * The workflow's names (DESIGN §2): stages, states, statuses, checkpoints, and how they relate.
 * Kept apart from the machine so that code needing only the names (the CLI's read verbs) does not
 * load XState.
 */
export const STAGES = ['plan', 'implement', 'review', 'verify'] as const;
export type StageName = (typeof STAGES)[number];

export const GATES = ['plan', 'implementation'] as const;
export type Gate = (typeof GATES)[number];
export type ApprovalMode = 'manual' | 'auto';

export const TASK_STATES = [
  'pending',
  'planning',
  'plan_awaiting_approval',
  'implementing',
  'implementation_awaiting_approval',
  'reviewing',
  'verifying',
  'completed',
  'failed',
  'cancelled',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TASK_STATUSES = [
  'pending',
  'in_progress',
  'awaiting_approval',
  'completed',
  'failed',
  'cancelled',
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const CHECKPOINTS = [
  'workflow_start',
  'after_planning',
  'start_implementation',
  'after_implementation',
  'after_review',
  'after_verification',
] as const;
export type CheckpointName = (typeof CHECKPOINTS)[number];

/** The state in which each stage runs, and the output key it fills (DESIGN §6 `show --json`). */
export const STAGE_STATE: Record<StageName, TaskState> = {
  plan: 'planning',
  implement: 'implementing',
  review: 'reviewing',
  verify: 'verifying',
};
export const STAGE_OUTPUT_KEY = {
  plan: 'plan',
  implement: 'implementation',
  review: 'review',
  verify: 'verification',
} as const satisfies Record<StageName, string>;
export type OutputKey = (typeof STAGE_OUTPUT_KEY)[StageName];

export function stageOfState(state: TaskState): StageName | null {
  for (const stage of STAGES) if (STAGE_STATE[stage] === state) return stage;
  return null;
}

export function statusOfState(state: TaskState): TaskStatus {
  switch (state) {
    case 'pending':
      return 'pending';
    case 'plan_awaiting_approval':
    case 'implementation_awaiting_approval':
      return 'awaiting_approval';
    case 'completed':
    case 'failed':
    case 'cancelled':
      return state;
    default:
      return 'in_progress';
  }
}

export function isTerminalState(state: TaskState): boolean {
  return state === 'completed' || state === 'failed' || state === 'cancelled';
}

