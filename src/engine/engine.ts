/**
 * One engine step: load the task's stored snapshot, compute the next one with the machine's pure
 * `transition()`, and commit the transition row, task row and checkpoints in one store transaction
 * (optimistic on the task's version). Only after the commit does anyone act on the effects it named.
 */
import {
  CHECKPOINTS,
  stageOfState,
  statusOfState,
  type CheckpointName,
  type TaskEvent,
} from '../../machines/task.machine.js';
import type { Config } from '../config.js';
import {
  CheckpointNotFoundError,
  ConflictError,
  InvalidTransitionError,
  StageResultRefused,
  TaskNotFoundError,
  UsageError,
} from '../errors.js';
import type { ClaimedRun, CommitResult, IntakeKey, NewNote, NewTask, Priority, Store, TaskRecord, TransitionWrite } from '../store/store.js';
import { GroupCommit } from './groupCommit.js';
import { RecentTasks } from './recentTasks.js';
import { notesFromStageOutput } from './stageNotes.js';
import { PRIORITIES } from '../store/store.js';
import {
  checkpointsNamed,
  initialSnapshot,
  policyFromConfig,
  restoreTaskSnapshot,
  runRequested,
  step,
  toPersisted,
  type MachineAction,
} from './snapshot.js';

export type Clock = () => number;

export interface SubmitRequest {
  request: string;
  priority?: Priority;
  tags?: string[];
  dependsOn?: number[];
}

export interface StepResult {
  task: TaskRecord;
  actions: MachineAction[];
  /** The next stage's run, claimed in the same write when the caller asked with `claimFor`. */
  claimed?: ClaimedRun;
}

/** Who claims the next stage's run with the write (TransitionWrite.claimFor). */
export type ClaimFor = TransitionWrite['claimFor'];

const MAX_CONFLICT_RETRIES = 20;
const GATE_STATES = 'plan_awaiting_approval or implementation_awaiting_approval';

function describeRefusal(task: TaskRecord, event: TaskEvent): string {
  const where = `task ${task.id} is ${task.state}`;
  switch (event.type) {
    case 'APPROVE':
      return `${where}; approve needs a task at ${GATE_STATES}`;
    case 'REJECT':
      return `${where}; reject needs a task at ${GATE_STATES}`;
    case 'CANCEL':
      return `${where}; only a task that has not finished can be cancelled`;
    case 'RETRY':
      return `${where}; retry needs a failed task`;
    case 'RESUME':
      return `${where}; resume needs a task interrupted in a stage (planning, implementing, reviewing or verifying)`;
    case 'START':
      return `${where}; only a pending task can start`;
    default:
      return `${where}; ${event.type} does not apply to it`;
  }
}

/** Called after a task's insert or transition has committed, in this process. Must not throw. */
export type CommitListener = (task: TaskRecord, event: { type: string }) => void;

export class Engine {
  private readonly commitListeners: CommitListener[] = [];
  private readonly groupCommit: GroupCommit;
  private readonly recent = new RecentTasks();

  constructor(
    readonly store: Store,
    readonly config: Config,
    readonly now: Clock = Date.now,
  ) {
    this.groupCommit = new GroupCommit(store);
  }

  /** Registers a listener for committed changes (zero-parse views, metrics). */
  onCommit(listener: CommitListener): void {
    this.commitListeners.push(listener);
  }

  private notifyCommitted(task: TaskRecord, event: { type: string }): void {
    for (const listener of this.commitListeners) {
      try {
        listener(task, event);
      } catch {
        // A listener's failure is its own: the transition is already durable.
      }
    }
  }

  async getTask(id: number): Promise<TaskRecord> {
    const task = await this.store.getTask(id);
    if (!task) throw new TaskNotFoundError(id);
    return task;
  }

  /** Validates a request and builds the new task's row, initial snapshot and SUBMIT event. Reads nothing. */
  private buildNewTask(req: SubmitRequest, actor: string, at: number): NewTask {
    const request = typeof req.request === 'string' ? req.request.trim() : '';
    if (request === '') throw new UsageError('the request is empty; say what the task should do');
    const priority = req.priority ?? 'medium';
    if (!PRIORITIES.includes(priority)) throw new UsageError(`priority "${priority}" is not one of high, medium, low`);
    const dependsOn = [...new Set(req.dependsOn ?? [])];
    const tags = [...new Set(req.tags ?? [])];
    const policy = policyFromConfig(this.config);
    const { snapshot, actions } = initialSnapshot(policy);
    return {
      request,
      priority,
      tags,
      dependsOn,
      actor,
      at,
      snapshot: toPersisted(snapshot),
      checkpoints: checkpointsNamed(actions),
      submitEvent: { type: 'SUBMIT', request, priority, tags, depends_on: dependsOn, policy },
    };
  }

  /** Inserts a new pending task with its first transition and the workflow_start checkpoint. */
  async submit(req: SubmitRequest, actor: string): Promise<TaskRecord> {
    const task = this.buildNewTask(req, actor, this.now());
    for (const dep of task.dependsOn) await this.getTask(dep);
    const created = await this.store.createTask(task);
    this.notifyCommitted(created, { type: 'SUBMIT' });
    return created;
  }

  /**
   * Submits the tasks of one intake item (an inbox file, an imported item) at most once: a second
   * call with the same key creates nothing and returns the first call's tasks with `isNew: false`.
   */
  async submitOnce(
    intake: IntakeKey,
    requests: (SubmitRequest & { dependsOnBatch?: number[] })[],
    actor: string,
    notes?: (ids: number[]) => NewNote[],
  ): Promise<{ tasks: TaskRecord[]; isNew: boolean }> {
    const at = this.now();
    const tasks = requests.map((r) => ({ ...this.buildNewTask(r, actor, at), dependsOnBatch: r.dependsOnBatch }));
    const result = await this.store.createTasksOnce(intake, tasks, notes);
    if (result.isNew) for (const t of result.tasks) this.notifyCommitted(t, { type: 'SUBMIT' });
    return result;
  }

  /** Records a decision or an insight with a task. */
  async note(taskId: number, note: Pick<NewNote, 'kind' | 'text' | 'rationale' | 'impact' | 'category'>, actor: string) {
    if (!note.text.trim()) throw new UsageError(`the ${note.kind} is empty; say what was decided or learned`);
    await this.getTask(taskId);
    const [recorded] = await this.store.addNotes([
      { ...note, taskId, scope: null, stage: null, attempt: null, source: 'cli', actor, at: this.now() },
    ]);
    return recorded;
  }

  /**
   * Applies one event to a task and commits it. Retries on a version conflict (another process wrote
   * in between) by recomputing from the fresh snapshot. Throws InvalidTransitionError when the machine
   * refuses the event in the task's current state. Writes to the store; runs no effects.
   */
  async apply(
    taskId: number,
    makeEvent: (task: TaskRecord) => TaskEvent,
    actor: string,
    options: { leaseToken?: number; claimFor?: ClaimFor; justRead?: TaskRecord } = {},
  ): Promise<StepResult> {
    for (let attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
      // A first guess, checked like any other by the write's version: the record the caller just read,
      // or the one this engine last committed.
      const guess = attempt === 0 ? (this.recent.take(taskId) ?? options.justRead) : undefined;
      const task = guess ?? (await this.getTask(taskId));
      let event: TaskEvent;
      let result: ReturnType<typeof step>;
      try {
        event = makeEvent(task);
        result = step(restoreTaskSnapshot(task.snapshot), event);
      } catch (e) {
        if (guess) continue; // judged on a remembered record: judge again on a fresh one
        throw e;
      }
      if (!result && guess) continue;
      if (!result) {
        if (event.type === 'STAGE_SUCCEEDED' || event.type === 'STAGE_FAILED') {
          throw new StageResultRefused(
            `task ${task.id} is ${task.state} (${event.stage} attempt ${task.snapshot.context.attempts[event.stage]}); ` +
              `the result of ${event.stage} attempt ${event.attempt} no longer applies`,
            'stale',
          );
        }
        throw new InvalidTransitionError(describeRefusal(task, event));
      }
      const write = this.buildWrite(task, event, result.next, result.actions, actor, options.leaseToken);
      write.claimFor = options.claimFor;
      const outcome = await this.groupCommit.commit(write);
      if (outcome.ok) {
        this.recent.remember(outcome.task);
        this.notifyCommitted(outcome.task, event);
        return { task: outcome.task, actions: result.actions, claimed: outcome.claimed };
      }
      if (outcome.reason === 'conflict') continue;
      throw this.refusalError(outcome);
    }
    throw new ConflictError(`task ${taskId} kept changing under us (${MAX_CONFLICT_RETRIES} tries); try again`);
  }

  private refusalError(outcome: Extract<CommitResult, { ok: false }>): Error {
    if (outcome.reason === 'missing') return new InvalidTransitionError(outcome.message);
    if (outcome.reason === 'conflict') return new ConflictError(outcome.message);
    return new StageResultRefused(outcome.message, outcome.reason);
  }

  private buildWrite(
    task: TaskRecord,
    event: TaskEvent,
    next: ReturnType<typeof restoreTaskSnapshot>,
    actions: MachineAction[],
    actor: string,
    leaseToken: number | undefined,
  ): TransitionWrite {
    const to = next.value as TaskRecord['state'];
    const isStageResult = event.type === 'STAGE_SUCCEEDED' || event.type === 'STAGE_FAILED';
    return {
      taskId: task.id,
      expectedVersion: task.version,
      before: task,
      from: task.state,
      to,
      status: statusOfState(to),
      event: event as unknown as TransitionWrite['event'],
      actor,
      at: event.at,
      snapshot: toPersisted(next),
      checkpoints: checkpointsNamed(actions),
      nextRun: runRequested(actions),
      notes:
        event.type === 'STAGE_SUCCEEDED'
          ? notesFromStageOutput(event.output, { taskId: task.id, stage: event.stage, attempt: event.attempt, actor, at: event.at })
          : undefined,
      completion: isStageResult
        ? {
            stage: event.stage,
            attempt: event.attempt,
            outcome: event.type === 'STAGE_SUCCEEDED' ? 'succeeded' : 'failed',
            exitCode: event.type === 'STAGE_FAILED' ? (event.exitCode ?? null) : 0,
            signal: event.type === 'STAGE_FAILED' ? (event.signal ?? null) : null,
            leaseToken: leaseToken ?? -1,
          }
        : undefined,
    };
  }

  /** Starts a pending task; `justRead` is its record if the caller has just read it (dispatch has). */
  start(taskId: number, actor: string, claimFor?: ClaimFor, justRead?: TaskRecord): Promise<StepResult> {
    return this.apply(taskId, () => ({ type: 'START', at: this.now(), policy: policyFromConfig(this.config) }), actor, { claimFor, justRead });
  }

  approve(taskId: number, by: string, comment?: string | null): Promise<StepResult> {
    return this.apply(taskId, () => ({ type: 'APPROVE', by, comment: comment ?? null, at: this.now() }), `user:${by}`);
  }

  reject(taskId: number, reason: string, by: string): Promise<StepResult> {
    if (!reason.trim()) throw new UsageError('reject needs --reason TEXT: it is handed to the next attempt as feedback');
    return this.apply(taskId, () => ({ type: 'REJECT', reason, by, at: this.now() }), `user:${by}`);
  }

  cancel(taskId: number, by: string, reason?: string | null): Promise<StepResult> {
    return this.apply(taskId, () => ({ type: 'CANCEL', reason: reason ?? null, by, at: this.now() }), `user:${by}`);
  }

  retry(taskId: number, by: string): Promise<StepResult> {
    return this.apply(taskId, () => ({ type: 'RETRY', by, at: this.now() }), `user:${by}`);
  }

  /**
   * Puts an interrupted task's stage back in line with attempt + 1. Refused while a live session
   * holds the task's lease: that stage is running, not interrupted. Writes only the transition: every
   * caller resumes through resumeTask (./resumeTask.ts), which first ends what a dead daemon left running.
   * `task` is an id, or a record the caller just read (then it is not read again).
   */
  async resume(task: number | TaskRecord, actor: string, isLeaseLive: (task: TaskRecord) => Promise<boolean>): Promise<StepResult> {
    if (typeof task === 'number') task = await this.getTask(task);
    if (task.lease && (await isLeaseLive(task))) {
      throw new InvalidTransitionError(
        `task ${task.id} is ${task.state} and its stage is running in session ${task.lease.owner}; ` +
          'resume is for interrupted tasks (`cairn list-resumable` shows them)',
      );
    }
    if (!task.lease && stageOfState(task.state)) {
      throw new InvalidTransitionError(
        `task ${task.id} is ${task.state} and already waiting for a daemon to run its stage; ` +
          'start one with `cairn start`, or run it in the foreground with `cairn run --resume ' +
          task.id +
          '`',
      );
    }
    return this.resumeRun(task, actor);
  }

  /**
   * Applies RESUME only if the task's lease is still the one the caller judged dead on `judged`, the
   * record it just read. Between that judgement and this write another daemon may have resumed and
   * claimed the task: resuming again would interrupt its live run, so that case is refused and nothing
   * is written.
   */
  resumeRun(judged: TaskRecord, actor: string): Promise<StepResult> {
    return this.apply(
      judged.id,
      (current) => {
        if (current.lease?.owner !== judged.lease?.owner || current.lease?.token !== judged.lease?.token) {
          throw new InvalidTransitionError(
            `task ${judged.id} was resumed by someone else while this resume was checking it` +
              (current.lease ? ` (its stage now runs in session ${current.lease.owner})` : '') +
              '; nothing was done',
          );
        }
        return { type: 'RESUME', at: this.now() };
      },
      actor,
      // The judged record is the first guess: if anyone wrote since, the version check refuses the
      // write and the event is judged again on a fresh read.
      { justRead: judged },
    );
  }

  /** Puts the task back to the newest checkpoint of that name; the history keeps everything since. */
  async rewind(taskId: number, to: string, by: string): Promise<StepResult> {
    if (!CHECKPOINTS.includes(to as CheckpointName)) {
      throw new UsageError(`"${to}" is not a checkpoint name; use one of ${CHECKPOINTS.join(', ')}`);
    }
    const task = await this.getTask(taskId);
    const checkpoints = await this.store.getCheckpoints(taskId);
    const target = checkpoints.filter((c) => c.name === to).at(-1);
    if (!target) {
      const has = [...new Set(checkpoints.map((c) => c.name))];
      throw new CheckpointNotFoundError(
        `task ${task.id} has not reached checkpoint ${to}; it has: ${has.join(', ') || 'none'}`,
      );
    }
    return this.apply(
      taskId,
      () => ({ type: 'REWIND', to: target.name, state: target.state, context: target.snapshot.context, by, at: this.now() }),
      `user:${by}`,
    );
  }

  /** Records a stage run's result, fenced by the lease token the run was claimed with. */
  recordStageResult(
    taskId: number,
    event: Extract<TaskEvent, { type: 'STAGE_SUCCEEDED' | 'STAGE_FAILED' }>,
    actor: string,
    leaseToken: number,
    claimFor?: ClaimFor,
  ) {
    return this.apply(taskId, () => event, actor, { leaseToken, claimFor });
  }

}
