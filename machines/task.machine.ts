/**
 * The task workflow: plan → approve → implement → review → verify.
 *
 * Pure by contract (DESIGN §2): no timers, promises, I/O, clocks or randomness. Time and attempt
 * numbers arrive as event fields, so replaying a task's stored events reproduces its stored snapshot.
 * The machine *names* effects as actions (`runStage`, `checkpoint`); the engine in `src/engine/`
 * persists the snapshot and only then performs them.
 */
import { and, assign, setup } from 'xstate';

export * from './taskStates.js';
import {
  STAGES,
  STAGE_OUTPUT_KEY,
  STAGE_STATE,
  TASK_STATES,
  type CheckpointName,
  type Gate,
  type ApprovalMode,
  type OutputKey,
  type StageName,
  type TaskState,
} from './taskStates.js';

/** The rules a task runs under, fixed when it is submitted so that replay never depends on config. */
export interface TaskPolicy {
  approvals: Record<Gate, ApprovalMode>;
  stageAttempts: number;
  reviewCycles: number;
  verifyCycles: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export interface Feedback {
  /** What produced it: a gate rejection, a review asking for changes, a failed verification, a failed run. */
  source: 'plan_rejected' | 'implementation_rejected' | 'review' | 'verification' | 'stage_failure';
  stage: StageName;
  text: string;
  by?: string;
  at: number;
}

export interface Approval {
  gate: Gate;
  decision: 'approved' | 'rejected' | 'auto_approved';
  by: string;
  at: number;
  comment: string | null;
}

export interface ErrorDetails {
  stage: StageName | null;
  reason: string;
  message: string;
  attempt: number | null;
  exitCode?: number | null;
  signal?: string | null;
  at: number;
}

export interface TaskContext {
  policy: TaskPolicy;
  /** Runs started per stage over the task's whole life; never decreases, so run ids and log names stay unique. */
  attempts: Record<StageName, number>;
  /** Consecutive executor failures of the stage now running; bounded by policy.stageAttempts. */
  failures: number;
  reviewCycles: number;
  verifyCycles: number;
  outputs: Partial<Record<OutputKey, unknown>>;
  feedback: Feedback[];
  approvals: Approval[];
  /** Earliest start of the next run (exponential backoff after a failure), epoch ms. */
  notBefore: number | null;
  failedStage: StageName | null;
  error: ErrorDetails | null;
}

export type FailureReason = 'exit' | 'signal' | 'timeout' | 'spawn' | 'output' | 'error';

export type TaskEvent =
  /** `policy`: the rules of the daemon that starts the task, which it runs under from then on. */
  | { type: 'START'; at: number; policy?: TaskPolicy }
  | { type: 'STAGE_SUCCEEDED'; stage: StageName; attempt: number; output: unknown; at: number }
  | {
      type: 'STAGE_FAILED';
      stage: StageName;
      attempt: number;
      reason: FailureReason;
      message: string;
      exitCode?: number | null;
      signal?: string | null;
      output?: string;
      at: number;
    }
  | { type: 'APPROVE'; by: string; comment?: string | null; at: number }
  | { type: 'REJECT'; reason: string; by: string; at: number }
  | { type: 'CANCEL'; reason?: string | null; by: string; at: number }
  | { type: 'RETRY'; by: string; at: number }
  | { type: 'RESUME'; at: number }
  | { type: 'REWIND'; to: CheckpointName; state: TaskState; context: TaskContext; by: string; at: number };

export type TaskEventType = TaskEvent['type'];

export interface TaskInput {
  policy: TaskPolicy;
}

type StageEvent = Extract<TaskEvent, { type: 'STAGE_SUCCEEDED' | 'STAGE_FAILED' }>;

function initialContext(policy: TaskPolicy): TaskContext {
  return {
    policy,
    attempts: { plan: 0, implement: 0, review: 0, verify: 0 },
    failures: 0,
    reviewCycles: 0,
    verifyCycles: 0,
    outputs: {},
    feedback: [],
    approvals: [],
    notBefore: null,
    failedStage: null,
    error: null,
  };
}

/** Delay before retry number `failures` (1-based): base · 2^(failures-1), capped. */
export function backoffMs(policy: TaskPolicy, failures: number): number {
  return Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** Math.max(0, failures - 1));
}

function describeFailure(event: Extract<TaskEvent, { type: 'STAGE_FAILED' }>): ErrorDetails {
  return {
    stage: event.stage,
    reason: event.reason,
    message: event.message,
    attempt: event.attempt,
    exitCode: event.exitCode ?? null,
    signal: event.signal ?? null,
    at: event.at,
  };
}

function reviewComments(output: unknown): string {
  const comments = (output as { comments?: unknown } | null)?.comments;
  return typeof comments === 'string' ? comments : JSON.stringify(comments ?? '');
}

function verdictOf(output: unknown): unknown {
  return (output as { verdict?: unknown } | null)?.verdict;
}

/** Entry of a stage state: count the run and name the effect that starts it. */
function stageState(stage: StageName) {
  return {
    entry: [
      { type: 'beginStage' as const, params: { stage } },
      {
        type: 'runStage' as const,
        params: ({ context }: { context: TaskContext }) => ({
          stage,
          attempt: context.attempts[stage],
          notBefore: context.notBefore,
        }),
      },
    ],
    exit: 'clearBackoff' as const,
  };
}

/**
 * Guards each transition of a stage event with `isCurrentRun`, so a result from an old attempt or
 * another stage has no enabled transition at all: `snapshot.can(event)` is false and the engine refuses it.
 */
function forCurrentRun<const T extends readonly object[]>(stage: StageName, transitions: T): T {
  const current = { type: 'isCurrentRun' as const, params: { stage } };
  return transitions.map((t) => {
    const guard = (t as { guard?: unknown }).guard;
    return { ...t, guard: guard ? and([current, guard as never]) : current };
  }) as unknown as T;
}

/**
 * The transitions every running stage shares: executor failure (retry with backoff, then `failed`),
 * resume after a crash (the same stage again, attempt + 1) and cancel. `firstFailure` lets a stage
 * claim some failures for itself before the generic retry rule (verify: a check that said no).
 */
function stageFailureAndControl<const F extends readonly object[] = []>(stage: StageName, firstFailure?: F) {
  const self = STAGE_STATE[stage];
  return {
    STAGE_FAILED: forCurrentRun(stage, [
      ...(firstFailure ?? ([] as unknown as F)),
      { guard: 'canRetryStage' as const, target: self, reenter: true, actions: 'scheduleRetry' as const },
      { target: 'failed', actions: 'recordFailure' as const },
    ]),
    RESUME: { target: self, reenter: true },
    CANCEL: { target: 'cancelled', actions: 'recordCancel' as const },
  };
}

export const taskMachine = setup({
  types: {
    context: {} as TaskContext,
    events: {} as TaskEvent,
    input: {} as TaskInput,
  },
  actions: {
    // Effects the engine performs after the transition commits.
    runStage: (_, _params: { stage: StageName; attempt: number; notBefore: number | null }) => {},
    checkpoint: (_, _params: { name: CheckpointName }) => {},

    beginStage: assign(({ context }, params: { stage: StageName }) => ({
      attempts: { ...context.attempts, [params.stage]: context.attempts[params.stage] + 1 },
    })),
    clearBackoff: assign({ notBefore: null }),
    // A task runs under the rules of the daemon that starts it, not of whoever queued it (a CLI in
    // another directory, an inbox file); the policy travels in the event, so replay stays exact.
    adoptPolicy: assign(({ context, event }) => (event.type === 'START' && event.policy ? { policy: event.policy } : { policy: context.policy })),
    recordOutput: assign(({ context, event }) => {
      if (event.type !== 'STAGE_SUCCEEDED') return {};
      return {
        outputs: { ...context.outputs, [STAGE_OUTPUT_KEY[event.stage]]: event.output },
        failures: 0,
        error: null,
      };
    }),
    scheduleRetry: assign(({ context, event }) => {
      if (event.type !== 'STAGE_FAILED') return {};
      const failures = context.failures + 1;
      return {
        failures,
        notBefore: event.at + backoffMs(context.policy, failures),
        error: describeFailure(event),
        feedback: [
          ...context.feedback,
          { source: 'stage_failure' as const, stage: event.stage, text: event.message, at: event.at },
        ],
      };
    }),
    recordFailure: assign(({ event }) => {
      if (event.type !== 'STAGE_FAILED') return {};
      return { failedStage: event.stage, error: describeFailure(event) };
    }),
    recordCycleExhausted: assign(({ context, event }) => {
      if (event.type !== 'STAGE_SUCCEEDED' && event.type !== 'STAGE_FAILED') return {};
      const isReview = event.stage === 'review';
      const limit = isReview ? context.policy.reviewCycles : context.policy.verifyCycles;
      return {
        failedStage: event.stage,
        error: {
          stage: event.stage,
          reason: isReview ? 'review_cycles_exhausted' : 'verify_cycles_exhausted',
          message: isReview
            ? `review still requested changes after ${limit} cycle(s) (limits.reviewCycles)`
            : `verification still failed after ${limit} cycle(s) (limits.verifyCycles)`,
          attempt: event.attempt,
          at: event.at,
        },
      };
    }),
    recordApproval: assign(({ context, event }, params: { gate: Gate }) => {
      if (event.type !== 'APPROVE') return {};
      return {
        approvals: [
          ...context.approvals,
          { gate: params.gate, decision: 'approved' as const, by: event.by, at: event.at, comment: event.comment ?? null },
        ],
      };
    }),
    recordAutoApproval: assign(({ context, event }, params: { gate: Gate }) => ({
      approvals: [
        ...context.approvals,
        { gate: params.gate, decision: 'auto_approved' as const, by: 'auto', at: (event as StageEvent).at, comment: null },
      ],
    })),
    recordRejection: assign(({ context, event }, params: { gate: Gate }) => {
      if (event.type !== 'REJECT') return {};
      const stage: StageName = params.gate === 'plan' ? 'plan' : 'implement';
      return {
        approvals: [
          ...context.approvals,
          { gate: params.gate, decision: 'rejected' as const, by: event.by, at: event.at, comment: event.reason },
        ],
        feedback: [
          ...context.feedback,
          {
            source: params.gate === 'plan' ? ('plan_rejected' as const) : ('implementation_rejected' as const),
            stage,
            text: event.reason,
            by: event.by,
            at: event.at,
          },
        ],
      };
    }),
    recordChangeRequest: assign(({ context, event }) => {
      if (event.type !== 'STAGE_SUCCEEDED') return {};
      return {
        outputs: { ...context.outputs, review: event.output },
        reviewCycles: context.reviewCycles + 1,
        failures: 0,
        feedback: [
          ...context.feedback,
          { source: 'review' as const, stage: 'review' as const, text: reviewComments(event.output), at: event.at },
        ],
      };
    }),
    recordVerifyFailure: assign(({ context, event }) => {
      if (event.type !== 'STAGE_FAILED') return {};
      return {
        outputs: { ...context.outputs, verification: event.output ?? event.message },
        verifyCycles: context.verifyCycles + 1,
        failures: 0,
        feedback: [
          ...context.feedback,
          { source: 'verification' as const, stage: 'verify' as const, text: event.output || event.message, at: event.at },
        ],
      };
    }),
    recordVerifyOutput: assign(({ context, event }) => {
      if (event.type !== 'STAGE_FAILED') return {};
      return { outputs: { ...context.outputs, verification: event.output ?? event.message } };
    }),
    recordCancel: assign(({ event }) => {
      if (event.type !== 'CANCEL') return {};
      return {
        error: { stage: null, reason: 'cancelled', message: event.reason ?? 'cancelled', attempt: null, at: event.at },
      };
    }),
    resetForRetry: assign({ failures: 0, reviewCycles: 0, verifyCycles: 0, error: null, failedStage: null }),
    restoreCheckpoint: assign(({ context, event }) => {
      if (event.type !== 'REWIND') return {};
      // History is never rewritten: attempts keep counting up so run ids and log files stay unique.
      const attempts = { ...event.context.attempts };
      for (const stage of STAGES) attempts[stage] = Math.max(attempts[stage], context.attempts[stage]);
      return { ...event.context, attempts, policy: context.policy };
    }),
  },
  guards: {
    isAutoApproved: ({ context }, params: { gate: Gate }) => context.policy.approvals[params.gate] === 'auto',
    /** Only the run the task is on may complete it: an old attempt's or another stage's result is refused. */
    isCurrentRun: ({ context, event }, params: { stage: StageName }) => {
      if (event.type !== 'STAGE_SUCCEEDED' && event.type !== 'STAGE_FAILED') return false;
      return event.stage === params.stage && event.attempt === context.attempts[params.stage];
    },
    canRetryStage: ({ context }) => context.failures + 1 < context.policy.stageAttempts,
    isApproveVerdict: ({ event }) => event.type === 'STAGE_SUCCEEDED' && verdictOf(event.output) === 'approve',
    canCycleReview: ({ context }) => context.reviewCycles < context.policy.reviewCycles,
    canCycleVerify: ({ context }) => context.verifyCycles < context.policy.verifyCycles,
    isVerifyExitFailure: ({ event }) => event.type === 'STAGE_FAILED' && event.reason === 'exit',
    isRewindTo: ({ event }, params: { state: TaskState }) => event.type === 'REWIND' && event.state === params.state,
    isFailedStage: ({ context }, params: { stage: StageName }) => context.failedStage === params.stage,
  },
}).createMachine({
  id: 'task',
  initial: 'pending',
  context: ({ input }) => initialContext(input.policy),
  entry: { type: 'checkpoint', params: { name: 'workflow_start' } },
  on: {
    // Rewind is allowed from every state: the checkpoint's recorded state decides the target.
    REWIND: TASK_STATES.map((state) => ({
      guard: { type: 'isRewindTo' as const, params: { state } },
      target: `.${state}`,
      actions: 'restoreCheckpoint' as const,
    })),
  },
  states: {
    pending: {
      on: {
        START: { target: 'planning', actions: 'adoptPolicy' },
        CANCEL: { target: 'cancelled', actions: 'recordCancel' },
      },
    },
    planning: {
      ...stageState('plan'),
      on: {
        STAGE_SUCCEEDED: forCurrentRun('plan', [
          {
            guard: { type: 'isAutoApproved', params: { gate: 'plan' } },
            target: 'implementing',
            actions: [
              'recordOutput',
              { type: 'checkpoint', params: { name: 'after_planning' } },
              { type: 'recordAutoApproval', params: { gate: 'plan' } },
              { type: 'checkpoint', params: { name: 'start_implementation' } },
            ],
          },
          {
            target: 'plan_awaiting_approval',
            actions: ['recordOutput', { type: 'checkpoint', params: { name: 'after_planning' } }],
          },
        ]),
        ...stageFailureAndControl('plan'),
      },
    },
    plan_awaiting_approval: {
      on: {
        APPROVE: {
          target: 'implementing',
          actions: [
            { type: 'recordApproval', params: { gate: 'plan' } },
            { type: 'checkpoint', params: { name: 'start_implementation' } },
          ],
        },
        REJECT: { target: 'planning', actions: { type: 'recordRejection', params: { gate: 'plan' } } },
        CANCEL: { target: 'cancelled', actions: 'recordCancel' },
      },
    },
    implementing: {
      ...stageState('implement'),
      on: {
        STAGE_SUCCEEDED: forCurrentRun('implement', [
          {
            guard: { type: 'isAutoApproved', params: { gate: 'implementation' } },
            target: 'reviewing',
            actions: [
              'recordOutput',
              { type: 'checkpoint', params: { name: 'after_implementation' } },
              { type: 'recordAutoApproval', params: { gate: 'implementation' } },
            ],
          },
          {
            target: 'implementation_awaiting_approval',
            actions: ['recordOutput', { type: 'checkpoint', params: { name: 'after_implementation' } }],
          },
        ]),
        ...stageFailureAndControl('implement'),
      },
    },
    implementation_awaiting_approval: {
      on: {
        APPROVE: { target: 'reviewing', actions: { type: 'recordApproval', params: { gate: 'implementation' } } },
        REJECT: {
          target: 'implementing',
          actions: { type: 'recordRejection', params: { gate: 'implementation' } },
        },
        CANCEL: { target: 'cancelled', actions: 'recordCancel' },
      },
    },
    reviewing: {
      ...stageState('review'),
      on: {
        STAGE_SUCCEEDED: forCurrentRun('review', [
          {
            guard: 'isApproveVerdict',
            target: 'verifying',
            actions: ['recordOutput', { type: 'checkpoint', params: { name: 'after_review' } }],
          },
          { guard: 'canCycleReview', target: 'implementing', actions: 'recordChangeRequest' },
          { target: 'failed', actions: ['recordOutput', 'recordCycleExhausted'] },
        ]),
        ...stageFailureAndControl('review'),
      },
    },
    verifying: {
      ...stageState('verify'),
      on: {
        STAGE_SUCCEEDED: forCurrentRun('verify', [
          {
            target: 'completed',
            actions: ['recordOutput', { type: 'checkpoint', params: { name: 'after_verification' } }],
          },
        ]),
        // A verification that ran and said no is not an executor failure: it loops back to implementing.
        ...stageFailureAndControl('verify', [
          {
            guard: and(['isVerifyExitFailure', 'canCycleVerify']),
            target: 'implementing',
            actions: 'recordVerifyFailure',
          },
          { guard: 'isVerifyExitFailure', target: 'failed', actions: ['recordVerifyOutput', 'recordCycleExhausted'] },
        ]),
      },
    },
    // Terminal in the workflow, but not XState-final: a rewind can still bring a task back.
    completed: {},
    failed: {
      on: {
        RETRY: STAGES.map((stage) => ({
          guard: { type: 'isFailedStage' as const, params: { stage } },
          target: STAGE_STATE[stage],
          actions: 'resetForRetry' as const,
        })),
      },
    },
    cancelled: {},
  },
});

export type TaskMachine = typeof taskMachine;
