/**
 * The daemon: one session that dispatches pending tasks, runs their stages under leases, records each
 * result only after the stage ends, notices writes from CLI processes, and stops gracefully.
 * Background loops never throw: failures are logged with the task and stage and the loop carries on.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { StageName } from '../../machines/task.machine.js';
import type { Config } from '../config.js';
import type { DaemonService, ServiceHost } from '../daemonService.js';
import { InvalidTransitionError, toError } from '../errors.js';
import { STAGE_EVENTS } from '../engine/announceCommits.js';
import { carryOutRun, type RunContext } from '../engine/carryOutRun.js';
import { Engine, type ClaimFor } from '../engine/engine.js';
import { ResumePass } from '../engine/resumeTask.js';
import { stageLogsDir } from '../executors/stageLogPath.js';
import type { ModuleStageFn } from '../executors/types.js';
import type { ClaimedRun, SessionRecord, Store, TaskRecord } from '../store/store.js';
import { wallClock } from './clock.js';
import { CoalescedRun } from './coalescedRun.js';
import { crashPoint } from '../process/crashPoints.js';
import { beginStartupSnapshot } from '../snapshots/snapshotSchedule.js';
import { Heartbeat, type HeartbeatHost } from './heartbeat.js';
import { markGoneSessions, thisHost } from '../process/sessions.js';

export type ResumePolicy = 'all' | 'none' | number[];

export interface DaemonOptions {
  store: Store;
  config: Config;
  logger: Logger;
  engine?: Engine;
  resume?: ResumePolicy;
  executors?: Partial<Record<StageName, ModuleStageFn>>;
  services?: DaemonService[];
  /** Drive only these tasks (`cairn run`); others are left to other daemons. */
  onlyTaskIds?: number[];
  /**
   * The safety poll: how often to look for writes by other processes that nobody announced (a ring
   * lost, a network file system). Announced writes wake the daemon at once (Store.watchChanges).
   */
  pollMs?: number;
  now?: () => number;
}

interface RunningStage {
  taskId: number;
  stage: StageName;
  attempt: number;
  leaseToken: number;
  controller: AbortController;
  done: Promise<void>;
  /** performance.now() at dispatch: how long it ran, whatever the wall clock did meanwhile. */
  startedMono: number;
}

export interface StartReport {
  session: SessionRecord;
  crashedSessions: SessionRecord[];
  resumed: number[];
  leftResumable: number[];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The safety poll's default: slow, since writes by others are announced (idle CPU is the cost of polling). */
export const DEFAULT_POLL_MS = 2_000;

/** setTimeout's limit; a longer delay would fire at once. A backoff that long is left to the safety poll. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** How many interrupted tasks are resumed together (one commit) at start. */
const RESUME_CHUNK = 256;

export class Daemon extends EventEmitter implements ServiceHost {
  readonly store: Store;
  readonly config: Config;
  readonly engine: Engine;
  readonly logger: Logger;
  private readonly now: () => number;
  private readonly resumePolicy: ResumePolicy;
  private readonly only: Set<number> | null;
  private readonly pollMs: number;
  private readonly runContext: RunContext;
  private readonly running = new Map<number, RunningStage>();
  private session: SessionRecord | null = null;
  private actor = 'daemon';
  private isStopping = false;
  /** Dispatch: fills free slots. */
  private readonly ticks = new CoalescedRun(
    () => this.dispatchOrLog(),
    () => this.isStopping,
    () => this.emit('tick'),
  );
  /** A look at the store for other processes' commits, on a ring or the safety poll. */
  private readonly looks = new CoalescedRun(
    () => this.poll(),
    () => this.isStopping,
  );
  private pollTimer: NodeJS.Timeout | null = null;
  private stopWatching: (() => void) | null = null;
  /** A timer for the earliest backoff this process set, and when it fires. */
  private dueTimer: NodeJS.Timeout | null = null;
  private dueAt = Infinity;
  private heartbeatTask: ScheduledTask | null = null;
  private heartbeatRunner: Heartbeat | null = null;
  private lastChangeMarker = -1;
  private starting: Promise<StartReport> | null = null;
  /** The startup snapshot while it is being written (null once recorded, or failed and logged). */
  private startupSnapshot: Promise<unknown> | null = null;

  constructor(private readonly options: DaemonOptions) {
    super();
    this.store = options.store;
    this.config = options.config;
    this.logger = options.logger;
    this.now = options.now ?? wallClock;
    this.engine = options.engine ?? new Engine(options.store, options.config, this.now);
    this.resumePolicy = options.resume ?? (options.config.resumeOnStart ? 'all' : 'none');
    this.only = options.onlyTaskIds ? new Set(options.onlyTaskIds) : null;
    this.pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    this.runContext = {
      config: this.config,
      store: this.store,
      engine: this.engine,
      executors: options.executors,
      logsDir: stageLogsDir(options.config.dataDir),
      now: this.now,
      actor: () => this.actor,
      claimFor: () => this.claimFor(),
    };
  }

  get sessionId(): string | null {
    return this.session?.id ?? null;
  }

  get runningCount(): number {
    return this.running.size;
  }

  private get leaseMs(): number {
    return this.config.heartbeat.staleAfter;
  }

  /** Creates the session, settles what crashed sessions left, starts the loops. */
  start(): Promise<StartReport> {
    this.starting ??= this.startOnce();
    return this.starting;
  }

  private async startOnce(): Promise<StartReport> {
    const now = this.now();
    const crashedSessions = await markGoneSessions(this.store, now, this.config.heartbeat.staleAfter);
    for (const s of crashedSessions) {
      this.logger.warn({ session: s.id, pid: s.pid, host: s.host, status: s.status }, `session ${s.id} (pid ${s.pid}) ended without stopping; marked ${s.status}`);
    }
    // Validates the cron expressions before anything else starts. The startup snapshot copies the
    // moment before resuming, so a resume can be undone; the copy is written while the daemon runs.
    // `cairn run` (only some tasks) leaves snapshots and the cycle command to `cairn start`.
    const upkeep = this.only === null;
    this.heartbeatRunner = new Heartbeat({ store: this.store, config: this.config, engine: this.engine, logger: this.logger, now: this.now, host: this.heartbeatHost(), upkeep });
    if (upkeep) {
      const { done } = await beginStartupSnapshot({ store: this.store, config: this.config, logger: this.logger, now });
      this.startupSnapshot = done.finally(() => (this.startupSnapshot = null));
    }
    this.session = await this.store.createSession({ id: randomUUID(), pid: process.pid, host: thisHost, at: now });
    this.actor = `daemon:${this.session.id.slice(0, 8)}`;
    this.store.checkpointInBackground?.((message) => this.logger.warn(`${message}; commits checkpoint the WAL themselves again`));
    const { resumed, leftResumable } = await this.resumeInterrupted(true);
    if (resumed.length) {
      const from = [...new Set(crashedSessions.map((s) => `${s.id} (${s.status})`))];
      this.logger.info(
        { tasks: resumed, sessions: crashedSessions.map((s) => s.id) },
        `resuming ${resumed.length} interrupted task(s): ${resumed.join(', ')}${from.length ? `, left by session ${from.join(', ')}` : ''}`,
      );
    }
    this.lastChangeMarker = await this.store.changeMarker();
    this.engine.onCommit((task, event) => this.noticeOwnCommit(task, event));
    await this.watchChanges();
    this.pollTimer = setInterval(() => this.wake(), this.pollMs);
    // No noOverlap: while a slow cycle (a long cycle command) runs, later ticks still renew the session.
    this.heartbeatTask = cron.schedule(this.config.heartbeat.cron, () => void this.heartbeat());
    this.logger.info(
      { session: this.session.id, dataDir: this.config.dataDir, store: this.store.location, concurrency: this.config.concurrency },
      `cairn daemon started (session ${this.session.id})`,
    );
    for (const service of this.options.services ?? []) {
      try {
        await service.start(this);
      } catch (e) {
        this.logger.error({ service: service.name, err: toError(e) }, `${service.name} did not start: ${toError(e).message}; the daemon carries on without it`);
      }
    }
    this.requestTick();
    return { session: this.session, crashedSessions, resumed, leftResumable };
  }

  /**
   * Resumes tasks interrupted by a gone session, as the resume policy allows; at start-up, lists the
   * others with what to do about them. Writes transitions.
   */
  private async resumeInterrupted(isStartup: boolean): Promise<{ resumed: number[]; leftResumable: number[] }> {
    const resumed: number[] = [];
    const leftResumable: number[] = [];
    const toResume: TaskRecord[] = [];
    for (const task of await this.store.findResumable(this.now())) {
      if (this.only && !this.only.has(task.id)) continue;
      if (task.lease?.owner === this.session?.id) continue;
      const allowed = this.resumePolicy === 'all' || (Array.isArray(this.resumePolicy) && this.resumePolicy.includes(task.id));
      if (allowed) toResume.push(task);
      else leftResumable.push(task.id);
    }
    // Gone sessions were marked at start-up, and are on every heartbeat before this pass.
    const pass = new ResumePass(this.engine);
    // Resumed a chunk at a time, concurrently, so each chunk's RESUME transitions share one commit.
    for (let i = 0; i < toResume.length; i += RESUME_CHUNK) {
      const chunk = toResume.slice(i, i + RESUME_CHUNK);
      const outcomes = await Promise.allSettled(chunk.map((task) => pass.resume(task, this.actor)));
      outcomes.forEach((outcome, j) => {
        const task = chunk[j];
        if (outcome.status === 'rejected') {
          const err = toError(outcome.reason);
          this.logger.warn({ task: task.id, err }, `could not resume task ${task.id}: ${err.message}`);
          return;
        }
        resumed.push(task.id);
        const ended = outcome.value.endedLeftover;
        if (ended) {
          this.logger.warn(
            { task: task.id, stage: ended.stage, attempt: ended.attempt, pgid: ended.pgid },
            `task ${task.id}: ended process group ${ended.pgid} left running by session ${ended.sessionId}`,
          );
        }
        this.logger.info(
          { task: task.id, stage: task.runStage, interruptedAttempt: task.runAttempt, previousSession: task.lease?.owner },
          `resuming task ${task.id}: its ${task.runStage} stage (attempt ${task.runAttempt}) was interrupted; it runs again as attempt ${(task.runAttempt ?? 0) + 1}`,
        );
      });
    }
    if (isStartup && leftResumable.length) {
      this.logger.warn(
        { tasks: leftResumable },
        `${leftResumable.length} interrupted task(s) left as they are (${leftResumable.join(', ')}); resume them with \`cairn resume ID\``,
      );
    }
    return { resumed, leftResumable };
  }

  /**
   * Runs one heartbeat cycle (src/daemon/heartbeat.ts): renews the session and leases, marks gone
   * sessions, resumes what they left, flags what needs a human, and does the snapshot upkeep.
   */
  async heartbeat(): Promise<void> {
    if (!this.session || this.isStopping || !this.heartbeatRunner) return;
    try {
      await this.heartbeatRunner.runCycle();
      this.requestTick();
    } catch (e) {
      this.logger.error({ err: toError(e) }, `heartbeat failed: ${toError(e).message}; the daemon carries on`);
    }
  }

  private heartbeatHost(): HeartbeatHost {
    const session = () => this.session?.id ?? null;
    const writingSnapshot = () => this.startupSnapshot !== null;
    return {
      get sessionId() {
        return session();
      },
      get isWritingStartupSnapshot() {
        return writingSnapshot();
      },
      runningForMs: (taskId: number) => {
        const entry = this.running.get(taskId);
        return entry ? performance.now() - entry.startedMono : undefined;
      },
      replaceLostSession: () => this.replaceLostSession(),
      resumeInterrupted: async () => (this.resumePolicy === 'all' ? (await this.resumeInterrupted(false)).resumed : []),
    };
  }

  /**
   * Our session row was marked stale by another process (this process was frozen or starved past
   * staleAfter), so others may already be resuming the stages we run: stop them all (their results
   * would be refused anyway: the lease is fenced) and carry on as a new session. Writes a session row.
   */
  private async replaceLostSession(): Promise<{ lost: string; replacement: string }> {
    const lost = this.session!.id;
    const stopping = [...this.running.values()];
    this.logger.error(
      { session: lost, tasks: stopping.map((r) => r.taskId) },
      `session ${lost} was marked stale by another process: this daemon stopped answering for over ${Math.round(this.leaseMs / 1000)} s ` +
        `(frozen, suspended or starved). Its leases are no longer its own: stopping ${stopping.length} running stage(s)` +
        `${stopping.length ? ` (tasks ${stopping.map((r) => r.taskId).join(', ')})` : ''} and carrying on as a new session`,
    );
    for (const r of stopping) r.controller.abort();
    await Promise.all(stopping.map((r) => r.done));
    this.session = await this.store.createSession({ id: randomUUID(), pid: process.pid, host: thisHost, at: this.now() });
    this.actor = `daemon:${this.session.id.slice(0, 8)}`;
    this.logger.warn({ session: this.session.id, replaces: lost }, `carrying on as session ${this.session.id} (replaces ${lost})`);
    return { lost, replacement: this.session.id };
  }

  /** Wakes on other processes' commits as they are announced; a watch that fails leaves the safety poll. */
  private async watchChanges(): Promise<void> {
    if (!this.store.watchChanges) return;
    const onError = (e: unknown) =>
      this.logger.warn(
        { err: toError(e) },
        `watching for other processes' writes failed: ${toError(e).message}; they are noticed within ${this.pollMs} ms instead`,
      );
    try {
      this.stopWatching = await this.store.watchChanges(() => this.wake(), onError);
    } catch (e) {
      onError(e);
    }
  }

  /**
   * A commit by this process (a library call, the inbox, a resume, a stage result): a user's event or
   * a new task may make work runnable or stop a running stage; a backoff is due at a known time.
   */
  private noticeOwnCommit(task: TaskRecord, event: { type: string }): void {
    if (this.isStopping) return;
    if (!STAGE_EVENTS.has(event.type)) this.wake();
    if (task.runStage && task.runAfter !== null && !task.lease) this.tickAt(task.runAfter);
  }

  /** Asks for a dispatch at `at` (epoch ms, this daemon's clock); one timer serves the earliest. */
  private tickAt(at: number): void {
    if (at >= this.dueAt) return;
    if (this.dueTimer) clearTimeout(this.dueTimer);
    this.dueAt = at;
    // +1: findRunnable takes run_after <= now, and a timer may fire a little early by the wall clock.
    this.dueTimer = setTimeout(() => {
      this.dueTimer = null;
      this.dueAt = Infinity;
      this.requestTick();
    }, Math.min(Math.max(0, at - this.now()) + 1, MAX_TIMER_MS));
  }

  /** Looks at the store now, folding a burst of wakes (rings, polls) into one look after the current. */
  private wake(): void {
    if (!this.isStopping) this.looks.request();
  }

  /** Notices commits by other processes (CLI approve, cancel, submit): stops overtaken runs, dispatches. */
  private async poll(): Promise<void> {
    if (this.isStopping) return;
    try {
      const marker = await this.store.changeMarker();
      if (marker === this.lastChangeMarker) {
        this.requestTick();
        return;
      }
      this.lastChangeMarker = marker;
      await this.stopOvertakenRuns();
      this.requestTick();
    } catch (e) {
      this.logger.error({ err: toError(e) }, `polling the store failed: ${toError(e).message}`);
    }
  }

  /** A run whose task was cancelled, rewound or resumed elsewhere lost its lease: stop its program. */
  private async stopOvertakenRuns(): Promise<void> {
    const runs = [...this.running.values()];
    if (runs.length === 0) return;
    // One read for all of them: on PostgreSQL each read is a round trip, and this runs on every change others commit.
    // Each run was claimed before this read, so the read sees at least its claim.
    const current = new Map((await this.store.listTasks({ ids: runs.map((r) => r.taskId) })).map((t) => [t.id, t]));
    for (const run of runs) {
      if (this.running.get(run.taskId) !== run) continue; // finished meanwhile
      const task = current.get(run.taskId);
      if (task?.lease && task.lease.owner === this.session?.id && task.lease.token === run.leaseToken) continue;
      if (run.controller.signal.aborted) continue;
      this.logger.info(
        { task: run.taskId, stage: run.stage, attempt: run.attempt, state: task?.state },
        `task ${run.taskId} is now ${task?.state ?? 'gone'}; stopping its ${run.stage} stage`,
      );
      run.controller.abort();
    }
  }

  requestTick(): void {
    this.ticks.request();
  }

  private async dispatchOrLog(): Promise<void> {
    try {
      await this.dispatch();
    } catch (e) {
      this.logger.error({ err: toError(e) }, `dispatch failed: ${toError(e).message}; retrying on the next poll`);
    }
  }

  private freeSlots(): number {
    return this.config.concurrency - this.running.size;
  }

  private isMine(task: TaskRecord): boolean {
    return !this.only || this.only.has(task.id);
  }

  /**
   * Fills free slots: first stages already under way (approved, retried, resumed), then pending tasks.
   * Claims and starts are made together, so one commit covers a whole round of dispatch.
   */
  private async dispatch(): Promise<void> {
    if (this.isStopping || !this.session) return;
    const session = this.session.id;
    if (this.freeSlots() > 0) {
      const now = this.now();
      const runnable = (await this.store.findRunnable(now, this.config.concurrency + this.running.size))
        .filter((t) => this.isMine(t) && !this.running.has(t.id))
        .slice(0, this.freeSlots());
      this.launchAll(await this.store.claimRuns(runnable.map((t) => t.id), session, now, this.leaseMs));
    }
    if (this.freeSlots() > 0 && !this.isStopping) {
      const pending = (await this.store.findDispatchable(this.freeSlots() * 2 + (this.only ? this.only.size : 0)))
        .filter((t) => this.isMine(t))
        .slice(0, this.freeSlots());
      // Each START claims its plan run in the same write; a store that cannot leaves it to claimRuns.
      const started = await Promise.all(
        pending.map((t) =>
          this.engine.start(t.id, this.actor, this.claimFor(), t).catch((e: unknown) => {
            if (e instanceof InvalidTransitionError) return null; // another process started or cancelled it first
            throw e;
          }),
        ),
      );
      this.launchAll(started.flatMap((step) => (step?.claimed ? [step.claimed] : [])));
      const unclaimed = started.flatMap((step) => (step && !step.claimed ? [step.task.id] : []));
      this.launchAll(await this.store.claimRuns(unclaimed, session, this.now(), this.leaseMs));
    }
  }

  /** Asks a write to claim the next stage's run for this session, unless the daemon is stopping. */
  private claimFor(): ClaimFor {
    return this.isStopping || !this.session ? undefined : { sessionId: this.session.id, leaseMs: this.leaseMs };
  }

  private launchAll(claims: ClaimedRun[]): void {
    for (const claim of claims) {
      // A claimed run that is not launched keeps its lease until it expires, then is resumed.
      if (this.isStopping) return;
      this.launch(claim);
    }
  }

  private launch(claim: ClaimedRun): void {
    crashPoint('after-claim');
    const { task, run, lease } = claim;
    const log = this.logger.child({ task: task.id, stage: run.stage, attempt: run.attempt, run: run.runId });
    const controller = new AbortController();
    const entry: RunningStage = {
      taskId: task.id,
      stage: run.stage,
      attempt: run.attempt,
      leaseToken: lease.token,
      controller,
      done: Promise.resolve(),
      startedMono: performance.now(),
    };
    this.running.set(task.id, entry);
    entry.done = this.execute(claim, controller, log)
      .catch((e) => {
        log.error({ err: toError(e) }, `task ${task.id}: ${run.stage} attempt ${run.attempt} failed inside cairn: ${toError(e).message}`);
        return undefined;
      })
      .then((next) => {
        this.running.delete(task.id);
        this.emit('stage-finished', task.id);
        // The next stage was claimed with this one's result: it takes over the slot at once.
        if (next) this.launchAll([next]);
        this.requestTick();
      });
  }

  /** Runs a claimed stage and records its result; returns the next stage's run when the result claimed it. */
  private async execute(claim: ClaimedRun, controller: AbortController, log: Logger): Promise<ClaimedRun | undefined> {
    const outcome = await carryOutRun(this.runContext, claim, controller.signal, log);
    if (outcome.recorded) this.emit('transition', outcome.recorded);
    return outcome.next;
  }

  /**
   * Graceful stop (DESIGN §5): no new dispatch, running stages get shutdownGraceMs to finish, then are
   * stopped and left resumable; the session is marked stopped.
   */
  async stop(): Promise<void> {
    if (this.isStopping) return;
    this.isStopping = true;
    // A signal can arrive while start() is still under way: wait for it, or it would go on creating
    // timers and services after they were torn down (and the process would never end cleanly).
    await this.starting?.catch(() => undefined);
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.dueTimer) clearTimeout(this.dueTimer);
    this.stopWatching?.();
    await this.heartbeatTask?.stop();
    await this.heartbeatRunner?.stop();
    await this.heartbeatTask?.destroy();
    for (const service of this.options.services ?? []) {
      try {
        await service.stop();
      } catch (e) {
        this.logger.error({ service: service.name, err: toError(e) }, `${service.name} did not stop cleanly: ${toError(e).message}`);
      }
    }
    const pending = [...this.running.values()];
    if (pending.length) {
      this.logger.info(
        { tasks: pending.map((r) => r.taskId), graceMs: this.config.shutdownGraceMs },
        `stopping: waiting up to ${this.config.shutdownGraceMs} ms for ${pending.length} running stage(s)`,
      );
      const allDone = Promise.all(pending.map((r) => r.done));
      await Promise.race([allDone, sleep(this.config.shutdownGraceMs)]);
      const left = [...this.running.values()];
      for (const r of left) r.controller.abort();
      await Promise.all(left.map((r) => r.done));
      if (left.length) {
        this.logger.warn(
          { tasks: left.map((r) => r.taskId) },
          `stopped ${left.length} stage(s) still running (tasks ${left.map((r) => r.taskId).join(', ')}); they resume on the next start`,
        );
      }
    }
    await this.ticks.whenIdle();
    // A stop soon after start finishes the startup snapshot rather than leave it half written.
    await this.startupSnapshot;
    if (this.session) await this.store.endSession(this.session.id, 'stopped', this.now());
    for (const service of this.options.services ?? []) {
      try {
        await service.afterStop?.();
      } catch (e) {
        this.logger.warn({ service: service.name, err: toError(e) }, `${service.name}: ${toError(e).message}`);
      }
    }
    this.logger.info({ session: this.session?.id }, 'cairn daemon stopped');
    this.emit('stopped');
  }
}
