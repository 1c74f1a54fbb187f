/**
 * src/engine/snapshot.ts steps the machine through an inert actor scope of its own instead of XState's
 * `transition()` (which builds a throwaway actor per call). That scope leans on XState internals, so
 * here its every step is checked against XState's own `initialTransition()`/`transition()`: every
 * event the machine knows, in the variants its guards tell apart, from every state reached by walking
 * the machine from its initial snapshot (until no new state, as its guards tell states apart). An XState upgrade that changes what the scope needs breaks
 * this test instead of production.
 */
import { describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import { STAGES, TASK_STATES, taskMachine, type TaskEvent, type TaskPolicy } from '../machines/task.machine.js';
import { initialSnapshot, step, type MachineAction, type TaskSnapshot } from '../src/engine/snapshot.js';

const manual: TaskPolicy = {
  approvals: { plan: 'manual', implementation: 'manual' },
  // Small limits, so every retry, cycle and exhaustion is within reach of a short walk.
  stageAttempts: 2,
  reviewCycles: 1,
  verifyCycles: 1,
  backoffBaseMs: 100,
  backoffMaxMs: 1000,
};
const auto: TaskPolicy = { ...manual, approvals: { plan: 'auto', implementation: 'auto' } };
const planAutoOnly: TaskPolicy = { ...manual, approvals: { plan: 'auto', implementation: 'manual' } };

const AT = 1_000;

/** Every event type with the variants the machine's guards and actions tell apart, for `snapshot`. */
function eventsFor(snapshot: TaskSnapshot, rewindTo: TaskSnapshot): TaskEvent[] {
  const events: TaskEvent[] = [
    { type: 'START', at: AT },
    { type: 'START', at: AT, policy: auto },
    { type: 'START', at: AT, policy: planAutoOnly },
    { type: 'APPROVE', by: 'ann', comment: 'fine', at: AT },
    { type: 'APPROVE', by: 'ann', at: AT },
    { type: 'REJECT', reason: 'do it again', by: 'bob', at: AT },
    { type: 'CANCEL', reason: 'not needed', by: 'cat', at: AT },
    { type: 'CANCEL', by: 'cat', at: AT },
    { type: 'RETRY', by: 'dan', at: AT },
    { type: 'RESUME', at: AT },
  ];
  for (const stage of STAGES) {
    const attempt = snapshot.context.attempts[stage];
    const outputs = stage === 'review' ? [{ verdict: 'approve' }, { verdict: 'request_changes', comments: 'add tests' }, 'no verdict'] : [`${stage} done`];
    for (const output of outputs) events.push({ type: 'STAGE_SUCCEEDED', stage, attempt, output, at: AT });
    events.push({ type: 'STAGE_FAILED', stage, attempt, reason: 'exit', message: `${stage} exited 3`, exitCode: 3, output: 'tail of the log', at: AT });
    events.push({ type: 'STAGE_FAILED', stage, attempt, reason: 'timeout', message: `${stage} timed out`, signal: 'SIGTERM', at: AT });
    // An old run's result, refused by isCurrentRun.
    events.push({ type: 'STAGE_SUCCEEDED', stage, attempt: attempt - 1, output: outputs[0], at: AT });
  }
  for (const state of TASK_STATES) {
    events.push({ type: 'REWIND', to: 'after_planning', state, context: rewindTo.context, by: 'eve', at: AT });
  }
  return events;
}

const projectActions = (actions: unknown[]) => (actions as MachineAction[]).map((a) => ({ type: a.type, params: a.params }));
/**
 * A state as the machine's guards see it: the state, the approval modes, the failure and cycle counts,
 * the failed stage, whether a backoff and an error are set. Attempt numbers and the feedback, approval
 * and output lists only grow and no guard compares them (events are made for the current attempt), so
 * two snapshots with one key accept the same events the same way: the walk ends when no key is new.
 */
const keyOf = ({ value, context: c }: TaskSnapshot) =>
  JSON.stringify([value, c.policy.approvals, c.failures, c.reviewCycles, c.verifyCycles, c.failedStage, c.notBefore === null, c.error === null]);

describe('engine/snapshot.ts steps the machine as XState does', () => {
  it('gives the same initial snapshot and actions as initialTransition()', () => {
    for (const policy of [manual, auto, planAutoOnly]) {
      const ours = initialSnapshot(policy);
      const [theirs, theirActions] = initialTransition(taskMachine, { policy });
      expect(ours.snapshot.value).toEqual(theirs.value);
      expect(ours.snapshot.context).toEqual(theirs.context);
      expect(projectActions(ours.actions)).toEqual(projectActions(theirActions));
    }
  });

  it('gives the same next value, context and actions as transition() for every event from every reachable state', () => {
    const start = initialSnapshot(manual).snapshot;
    const seen = new Set([keyOf(start)]);
    let frontier = [start];
    const covered = new Set<string>();
    let compared = 0;
    let accepted = 0;
    while (frontier.length > 0) {
      const next: TaskSnapshot[] = [];
      for (const snapshot of frontier) {
        for (const event of eventsFor(snapshot, start)) {
          const ours = step(snapshot, event);
          const [theirs, theirActions] = transition(taskMachine, snapshot, event);
          const where = `${event.type} in ${String(snapshot.value)} (${JSON.stringify(snapshot.context.attempts)})`;
          compared++;
          if (ours === null) {
            // Refused: XState's step leaves the snapshot as it was and names nothing.
            expect(theirs.value, where).toEqual(snapshot.value);
            expect(theirs.context, where).toEqual(snapshot.context);
            expect(theirActions, where).toEqual([]);
            continue;
          }
          accepted++;
          covered.add(event.type);
          expect(ours.next.value, where).toEqual(theirs.value);
          expect(ours.next.context, where).toEqual(theirs.context);
          expect(ours.next.status, where).toEqual(theirs.status);
          expect(projectActions(ours.actions), where).toEqual(projectActions(theirActions));
          const key = keyOf(ours.next);
          if (!seen.has(key)) {
            seen.add(key);
            next.push(ours.next);
          }
        }
      }
      frontier = next;
    }
    // Every event the machine knows was accepted somewhere, and the walk reached every state.
    expect([...covered].sort()).toEqual(taskMachine.events.map(String).sort());
    const reached = new Set([...seen].map((key) => (JSON.parse(key) as [string])[0]));
    expect([...reached].sort()).toEqual([...TASK_STATES].sort());
    expect(seen.size).toBeGreaterThan(50);
    expect(compared).toBeGreaterThan(accepted);
  });
});
