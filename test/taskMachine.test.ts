import { describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import {
  STAGES,
  TASK_STATES,
  statusOfState,
  taskMachine,
  type TaskEvent,
  type TaskPolicy,
} from '../machines/task.machine.js';

const manual: TaskPolicy = {
  approvals: { plan: 'manual', implementation: 'manual' },
  stageAttempts: 3,
  reviewCycles: 2,
  verifyCycles: 2,
  backoffBaseMs: 100,
  backoffMaxMs: 1000,
};
const auto: TaskPolicy = { ...manual, approvals: { plan: 'auto', implementation: 'auto' } };

type Snapshot = ReturnType<typeof initialTransition<typeof taskMachine>>[0];
type Action = { type: string; params?: unknown };

function start(policy: TaskPolicy = manual) {
  const [snapshot, actions] = initialTransition(taskMachine, { policy });
  return { snapshot, actions: actions as Action[] };
}

function send(snapshot: Snapshot, event: TaskEvent) {
  const [next, actions] = transition(taskMachine, snapshot, event);
  return { snapshot: next, actions: actions as Action[], accepted: snapshot.can(event) };
}

/** Sends events in order, each one required to be accepted; returns the last result. */
function drive(policy: TaskPolicy, events: TaskEvent[]) {
  let current = start(policy).snapshot;
  let last = { snapshot: current, actions: [] as Action[], accepted: true };
  for (const event of events) {
    last = send(current, event);
    expect(last.accepted, `${event.type} refused in ${String(current.value)}`).toBe(true);
    current = last.snapshot;
  }
  return last;
}

const ok = (stage: (typeof STAGES)[number], attempt = 1, output: unknown = `${stage} done`, at = 10): TaskEvent => ({
  type: 'STAGE_SUCCEEDED',
  stage,
  attempt,
  output,
  at,
});
const fail = (
  stage: (typeof STAGES)[number],
  attempt = 1,
  reason: 'exit' | 'timeout' | 'signal' = 'exit',
  at = 10,
): TaskEvent => ({ type: 'STAGE_FAILED', stage, attempt, reason, message: `${stage} failed`, exitCode: 3, output: 'boom', at });
const approve: TaskEvent = { type: 'APPROVE', by: 'ann', comment: 'fine', at: 20 };
const reject = (reason: string): TaskEvent => ({ type: 'REJECT', reason, by: 'bob', at: 21 });
const START: TaskEvent = { type: 'START', at: 1 };

const names = (actions: Action[]) => actions.map((a) => a.type);
const checkpoints = (actions: Action[]) =>
  actions.filter((a) => a.type === 'checkpoint').map((a) => (a.params as { name: string }).name);
const runs = (actions: Action[]) => actions.filter((a) => a.type === 'runStage').map((a) => a.params);

describe('task machine: the happy path', () => {
  it('starts pending and names the workflow_start checkpoint', () => {
    const { snapshot, actions } = start();
    expect(snapshot.value).toBe('pending');
    expect(checkpoints(actions)).toEqual(['workflow_start']);
    expect(snapshot.context.attempts).toEqual({ plan: 0, implement: 0, review: 0, verify: 0 });
  });

  it('walks every state with manual gates, naming each run and checkpoint', () => {
    let s = start().snapshot;
    const step = (event: TaskEvent, state: string, effects: { runs?: unknown[]; checkpoints?: string[] }) => {
      const r = send(s, event);
      expect(r.accepted).toBe(true);
      expect(r.snapshot.value).toBe(state);
      expect(runs(r.actions)).toEqual(effects.runs ?? []);
      expect(checkpoints(r.actions)).toEqual(effects.checkpoints ?? []);
      s = r.snapshot;
    };
    step(START, 'planning', { runs: [{ stage: 'plan', attempt: 1, notBefore: null }] });
    step(ok('plan'), 'plan_awaiting_approval', { checkpoints: ['after_planning'] });
    step(approve, 'implementing', {
      runs: [{ stage: 'implement', attempt: 1, notBefore: null }],
      checkpoints: ['start_implementation'],
    });
    step(ok('implement'), 'implementation_awaiting_approval', { checkpoints: ['after_implementation'] });
    step(approve, 'reviewing', { runs: [{ stage: 'review', attempt: 1, notBefore: null }] });
    step(ok('review', 1, { verdict: 'approve', comments: 'lgtm' }), 'verifying', {
      runs: [{ stage: 'verify', attempt: 1, notBefore: null }],
      checkpoints: ['after_review'],
    });
    step(ok('verify'), 'completed', { checkpoints: ['after_verification'] });
    expect(s.context.outputs).toEqual({
      plan: 'plan done',
      implementation: 'implement done',
      review: { verdict: 'approve', comments: 'lgtm' },
      verification: 'verify done',
    });
    expect(s.context.approvals.map((a) => [a.gate, a.decision, a.by])).toEqual([
      ['plan', 'approved', 'ann'],
      ['implementation', 'approved', 'ann'],
    ]);
  });

  it('skips both gates when approvals are auto, recording them as auto_approved', () => {
    const r = drive(auto, [START, ok('plan')]);
    expect(r.snapshot.value).toBe('implementing');
    expect(checkpoints(r.actions)).toEqual(['after_planning', 'start_implementation']);
    const r2 = send(r.snapshot, ok('implement'));
    expect(r2.snapshot.value).toBe('reviewing');
    expect(r2.snapshot.context.approvals.map((a) => a.decision)).toEqual(['auto_approved', 'auto_approved']);
  });

  it('START adopts the starting daemon\'s policy: a task queued with manual gates runs with the daemon\'s auto ones', () => {
    const r = drive(manual, [{ type: 'START', at: 1, policy: auto }, ok('plan')]);
    expect(r.snapshot.value).toBe('implementing');
    expect(r.snapshot.context.policy).toEqual(auto);
    // Without a policy in the event (older histories), the task keeps the one it was created with.
    expect(drive(manual, [START, ok('plan')]).snapshot.value).toBe('plan_awaiting_approval');
  });

  it('maps every state to one of the six statuses', () => {
    expect(TASK_STATES.map(statusOfState)).toEqual([
      'pending',
      'in_progress',
      'awaiting_approval',
      'in_progress',
      'awaiting_approval',
      'in_progress',
      'in_progress',
      'completed',
      'failed',
      'cancelled',
    ]);
  });
});

describe('task machine: gates', () => {
  it('a plan rejection returns to planning with the reason as feedback and a new attempt', () => {
    const r = drive(manual, [START, ok('plan'), reject('too vague')]);
    expect(r.snapshot.value).toBe('planning');
    expect(runs(r.actions)).toEqual([{ stage: 'plan', attempt: 2, notBefore: null }]);
    expect(r.snapshot.context.feedback).toEqual([
      { source: 'plan_rejected', stage: 'plan', text: 'too vague', by: 'bob', at: 21 },
    ]);
    expect(r.snapshot.context.approvals.at(-1)).toMatchObject({ gate: 'plan', decision: 'rejected', comment: 'too vague' });
  });

  it('an implementation rejection returns to implementing with feedback', () => {
    const r = drive(manual, [START, ok('plan'), approve, ok('implement'), reject('no tests')]);
    expect(r.snapshot.value).toBe('implementing');
    expect(runs(r.actions)).toEqual([{ stage: 'implement', attempt: 2, notBefore: null }]);
    expect(r.snapshot.context.feedback.at(-1)).toMatchObject({ source: 'implementation_rejected', text: 'no tests' });
  });

  it('refuses APPROVE and REJECT outside a gate', () => {
    for (const events of [[], [START], [START, ok('plan'), approve], [START, ok('plan'), approve, ok('implement'), approve]]) {
      const s = drive(manual, events as TaskEvent[]).snapshot;
      expect(send(s, approve).accepted, `approve in ${String(s.value)}`).toBe(false);
      expect(send(s, reject('x')).accepted, `reject in ${String(s.value)}`).toBe(false);
    }
  });
});

describe('task machine: review and verify loops', () => {
  const toReview = [START, ok('plan'), approve, ok('implement'), approve];
  const changes = (attempt: number) => ok('review', attempt, { verdict: 'request_changes', comments: `fix ${attempt}` });

  it('request_changes goes back to implementing with the comments as feedback', () => {
    const r = drive(manual, [...toReview, changes(1)]);
    expect(r.snapshot.value).toBe('implementing');
    expect(r.snapshot.context.reviewCycles).toBe(1);
    expect(r.snapshot.context.feedback.at(-1)).toMatchObject({ source: 'review', text: 'fix 1' });
  });

  it('fails once review keeps requesting changes past limits.reviewCycles', () => {
    // reviewCycles = 2: two loops back are allowed, the third request fails the task.
    const r = drive(manual, [
      ...toReview,
      changes(1),
      ok('implement', 2),
      approve,
      changes(2),
      ok('implement', 3),
      approve,
      changes(3),
    ]);
    expect(r.snapshot.value).toBe('failed');
    expect(r.snapshot.context.failedStage).toBe('review');
    expect(r.snapshot.context.error?.reason).toBe('review_cycles_exhausted');
  });

  const toVerify = [...toReview, ok('review', 1, { verdict: 'approve' })];

  it('a verify that exits non-zero goes back to implementing with its output as feedback', () => {
    const r = drive(manual, [...toVerify, fail('verify', 1, 'exit')]);
    expect(r.snapshot.value).toBe('implementing');
    expect(r.snapshot.context.verifyCycles).toBe(1);
    expect(r.snapshot.context.feedback.at(-1)).toMatchObject({ source: 'verification', text: 'boom' });
  });

  it('fails once verification keeps failing past limits.verifyCycles', () => {
    const loop = (n: number) => [fail('verify', n, 'exit'), ok('implement', n + 1), approve, ok('review', n + 1, { verdict: 'approve' })];
    const r = drive(manual, [...toVerify, ...loop(1), ...loop(2), fail('verify', 3, 'exit')]);
    expect(r.snapshot.value).toBe('failed');
    expect(r.snapshot.context.error?.reason).toBe('verify_cycles_exhausted');
    expect(r.snapshot.context.outputs.verification).toBe('boom');
  });

  it('a verify that timed out is an executor failure (retried), not a verification verdict', () => {
    const r = drive(manual, [...toVerify, fail('verify', 1, 'timeout')]);
    expect(r.snapshot.value).toBe('verifying');
    expect(r.snapshot.context.verifyCycles).toBe(0);
    expect(runs(r.actions)).toEqual([{ stage: 'verify', attempt: 2, notBefore: 10 + 100 }]);
  });
});

describe('task machine: executor failures, retry, resume', () => {
  it('retries with exponential backoff up to limits.stageAttempts, then fails', () => {
    const r1 = drive(manual, [START, fail('plan', 1, 'exit', 1000)]);
    expect(r1.snapshot.value).toBe('planning');
    expect(runs(r1.actions)).toEqual([{ stage: 'plan', attempt: 2, notBefore: 1100 }]);
    const r2 = send(r1.snapshot, fail('plan', 2, 'signal', 2000));
    expect(runs(r2.actions)).toEqual([{ stage: 'plan', attempt: 3, notBefore: 2200 }]);
    const r3 = send(r2.snapshot, fail('plan', 3, 'exit', 3000));
    expect(r3.snapshot.value).toBe('failed');
    expect(r3.snapshot.context.error).toMatchObject({ stage: 'plan', reason: 'exit', attempt: 3, exitCode: 3 });
  });

  it('caps the backoff at backoffMaxMs', () => {
    const policy = { ...manual, stageAttempts: 10, backoffBaseMs: 400, backoffMaxMs: 1000 };
    let s = drive(policy, [START]).snapshot;
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      const r = send(s, fail('plan', attempt, 'exit', 0));
      delays.push((runs(r.actions)[0] as { notBefore: number }).notBefore);
      s = r.snapshot;
    }
    expect(delays).toEqual([400, 800, 1000, 1000]);
  });

  it('a success resets the failure count for the next stage', () => {
    const r = drive(auto, [START, fail('plan', 1), fail('plan', 2), ok('plan', 3), fail('implement', 1), fail('implement', 2)]);
    expect(r.snapshot.value).toBe('implementing');
  });

  it('refuses a completion from an old attempt or another stage', () => {
    const s = drive(manual, [START, fail('plan', 1)]).snapshot; // now on attempt 2
    expect(send(s, ok('plan', 1)).accepted).toBe(false);
    expect(send(s, fail('plan', 1)).accepted).toBe(false);
    expect(send(s, ok('implement', 2)).accepted).toBe(false);
    expect(send(s, ok('plan', 3)).accepted).toBe(false);
    expect(send(s, ok('plan', 2)).accepted).toBe(true);
  });

  it('refuses stage results while no stage runs', () => {
    for (const events of [[], [START, ok('plan')]]) {
      const s = drive(manual, events as TaskEvent[]).snapshot;
      expect(send(s, ok('plan', 1)).accepted).toBe(false);
      expect(send(s, fail('plan', 1)).accepted).toBe(false);
    }
  });

  it('RESUME re-runs the interrupted stage with attempt + 1 without counting a failure', () => {
    const r = drive(manual, [START, { type: 'RESUME', at: 5 }]);
    expect(r.snapshot.value).toBe('planning');
    expect(runs(r.actions)).toEqual([{ stage: 'plan', attempt: 2, notBefore: null }]);
    expect(r.snapshot.context.failures).toBe(0);
  });

  it('refuses RESUME where no stage runs', () => {
    for (const events of [[], [START, ok('plan')]]) {
      const s = drive(manual, events as TaskEvent[]).snapshot;
      expect(send(s, { type: 'RESUME', at: 5 }).accepted).toBe(false);
    }
  });

  it('RETRY puts a failed task back into the stage that failed, with fresh counters', () => {
    const failed = drive(auto, [START, ok('plan'), fail('implement', 1), fail('implement', 2), fail('implement', 3)]);
    expect(failed.snapshot.value).toBe('failed');
    const r = send(failed.snapshot, { type: 'RETRY', by: 'ann', at: 50 });
    expect(r.accepted).toBe(true);
    expect(r.snapshot.value).toBe('implementing');
    expect(runs(r.actions)).toEqual([{ stage: 'implement', attempt: 4, notBefore: null }]);
    expect(r.snapshot.context).toMatchObject({ failures: 0, error: null, failedStage: null });
  });

  it('refuses RETRY unless the task failed', () => {
    for (const events of [[], [START], [START, ok('plan')]]) {
      const s = drive(manual, events as TaskEvent[]).snapshot;
      expect(send(s, { type: 'RETRY', by: 'x', at: 1 }).accepted).toBe(false);
    }
  });
});

describe('task machine: cancel', () => {
  it('cancels from every non-terminal state', () => {
    const paths: TaskEvent[][] = [
      [],
      [START],
      [START, ok('plan')],
      [START, ok('plan'), approve],
      [START, ok('plan'), approve, ok('implement')],
      [START, ok('plan'), approve, ok('implement'), approve],
      [START, ok('plan'), approve, ok('implement'), approve, ok('review', 1, { verdict: 'approve' })],
    ];
    for (const path of paths) {
      const s = drive(manual, path).snapshot;
      const r = send(s, { type: 'CANCEL', reason: 'not needed', by: 'ann', at: 9 });
      expect(r.accepted, `cancel from ${String(s.value)}`).toBe(true);
      expect(r.snapshot.value).toBe('cancelled');
      expect(r.snapshot.context.error).toMatchObject({ reason: 'cancelled', message: 'not needed' });
    }
  });

  it('refuses CANCEL of a terminal task', () => {
    const completed = drive(auto, [START, ok('plan'), ok('implement'), ok('review', 1, { verdict: 'approve' }), ok('verify')]);
    expect(completed.snapshot.value).toBe('completed');
    const cancelled = drive(manual, [{ type: 'CANCEL', by: 'x', at: 1 }]);
    const failed = drive(manual, [START, fail('plan', 1), fail('plan', 2), fail('plan', 3)]);
    for (const s of [completed.snapshot, cancelled.snapshot, failed.snapshot]) {
      expect(send(s, { type: 'CANCEL', by: 'x', at: 2 }).accepted).toBe(false);
    }
  });
});

describe('task machine: rewind', () => {
  it('returns to a checkpoint state and context, keeping attempts counting up', () => {
    const atGate = drive(manual, [START, ok('plan', 1, 'first plan')]).snapshot;
    const done = drive(manual, [START, ok('plan', 1, 'first plan'), approve, ok('implement'), approve]).snapshot;
    const r = send(done, {
      type: 'REWIND',
      to: 'after_planning',
      state: 'plan_awaiting_approval',
      context: atGate.context,
      by: 'ann',
      at: 99,
    });
    expect(r.accepted).toBe(true);
    expect(r.snapshot.value).toBe('plan_awaiting_approval');
    expect(r.snapshot.context.outputs).toEqual({ plan: 'first plan' });
    expect(r.snapshot.context.attempts).toEqual({ plan: 1, implement: 1, review: 1, verify: 0 });
    expect(checkpoints(r.actions)).toEqual([]);
  });

  it('rewinding into a stage state runs that stage again with the next attempt', () => {
    const started = drive(manual, [START, ok('plan'), approve]).snapshot;
    const later = drive(manual, [START, ok('plan'), approve, ok('implement'), approve]).snapshot;
    const r = send(later, {
      type: 'REWIND',
      to: 'start_implementation',
      state: 'implementing',
      context: started.context,
      by: 'ann',
      at: 99,
    });
    expect(r.snapshot.value).toBe('implementing');
    expect(runs(r.actions)).toEqual([{ stage: 'implement', attempt: 2, notBefore: null }]);
    expect(names(r.actions)).not.toContain('checkpoint');
  });

  it('rewinds into the same state it is in (re-entering the stage)', () => {
    const started = drive(manual, [START, ok('plan'), approve]).snapshot;
    const r = send(started, {
      type: 'REWIND',
      to: 'start_implementation',
      state: 'implementing',
      context: started.context,
      by: 'ann',
      at: 99,
    });
    expect(runs(r.actions)).toEqual([{ stage: 'implement', attempt: 2, notBefore: null }]);
  });

  it('brings a completed task back', () => {
    const completed = drive(auto, [START, ok('plan'), ok('implement'), ok('review', 1, { verdict: 'approve' }), ok('verify')]);
    const r = send(completed.snapshot, {
      type: 'REWIND',
      to: 'workflow_start',
      state: 'pending',
      context: start(auto).snapshot.context,
      by: 'ann',
      at: 99,
    });
    expect(r.snapshot.value).toBe('pending');
    expect(r.snapshot.context.outputs).toEqual({});
  });
});

describe('task machine: purity', () => {
  it('the same events give the same snapshot, through a JSON round trip', () => {
    const events: TaskEvent[] = [START, fail('plan', 1), ok('plan', 2), reject('again'), ok('plan', 3), approve];
    const a = drive(manual, events).snapshot;
    let s = start(manual).snapshot;
    for (const e of events) {
      const restored = taskMachine.resolveState(JSON.parse(JSON.stringify({ value: s.value, context: s.context })));
      s = transition(taskMachine, restored, e)[0];
    }
    expect({ value: s.value, context: s.context }).toEqual({ value: a.value, context: a.context });
  });
});
