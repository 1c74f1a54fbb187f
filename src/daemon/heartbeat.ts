/**
 * One heartbeat cycle (DESIGN §5), run by the daemon's node-cron task and by `cairn heartbeat`. It is
 * a list of named parts, each in its own try/catch: a failing part is logged and recorded (the
 * `heartbeats` table, which `cairn status` reads) and the next part runs anyway; nothing here throws
 * out to the daemon. Time comes from the injected clock; node-cron only decides when a cycle starts.
 *
 *   session    renew this daemon's session and its leases; notice when someone marked it stale
 *   sessions   mark silent sessions stale and dead ones crashed, freeing their tasks
 *   resume     resume what they left (a daemon whose resume policy is "all")
 *   flags      stages past their timeout, approvals waiting too long, recently stale sessions
 *   snapshot   an hourly snapshot when `snapshots.cron` says one is due          (SQLite)
 *   retention  keepHourly / keepDaily; the rest to state/archive/                (SQLite)
 *   drill      once per `snapshots.drillEvery`: does the newest snapshot restore? (SQLite)
 *   history    tasks finished before `history.keepDays` to monthly archives       (SQLite)
 *   cycle      the `cycle` command, every `cycle.every` cycles
 *
 * The upkeep parts run under the upkeep lock, on SQLite and PostgreSQL alike. A daemon also claims
 * the cycle itself (until the next `heartbeat.cron` tick), so that of several daemons on one database,
 * all woken by the same tick, one runs the upkeep and the others skip it, rather than each running it
 * in turn once the first has let go of the lock.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Engine } from '../engine/engine.js';
import { toError } from '../errors.js';
import { AUTOMATIC_KINDS, listSnapshots } from '../snapshots/catalog.js';
import { locationsOf, sqliteDbOf } from '../snapshots/locations.js';
import { isSnapshotDue } from '../snapshots/snapshotSchedule.js';
import type { Store } from '../store/store.js';
import { runCycleCommand } from './cycleCommand.js';
import { assertCronPattern, nextTick } from '../process/cronTicks.js';
import { findStuckTasks, findWaitingApprovals, staleSessionFlags } from './healthFlags.js';
import { cyclesSinceCycleRan, recordHeartbeat, type HealthFlag, type PartOutcome } from './heartbeatLog.js';
import { isPidAlive, markGoneSessions, thisHost } from '../process/sessions.js';
import { lockTableOf, type LockTable } from './upkeepLock.js';

/** What a daemon lends its heartbeat; `cairn heartbeat` has none (no session, no stages of its own). */
export interface HeartbeatHost {
  readonly sessionId: string | null;
  /** How long this process has run the task's current stage, on the monotonic clock; undefined when it runs none. */
  runningForMs(taskId: number): number | undefined;
  /** Called when this session's row is no longer active: another process marked it stale. */
  replaceLostSession(): Promise<{ lost: string; replacement: string }>;
  /** Resumes tasks gone sessions left, as the daemon's resume policy allows; returns their ids. */
  resumeInterrupted(): Promise<number[]>;
  /** Whether the startup snapshot is still being written (it counts as the scheduled one once recorded). */
  readonly isWritingStartupSnapshot?: boolean;
}

export interface HeartbeatOptions {
  store: Store;
  config: Config;
  engine: Engine;
  logger: Logger;
  now: () => number;
  host?: HeartbeatHost;
  /** false for `cairn run`, which drives one task: it renews and flags, but leaves snapshots and the cycle to `cairn start`. */
  upkeep?: boolean;
}

export interface HeartbeatReport {
  startedAt: number;
  finishedAt: number;
  ok: boolean;
  parts: PartOutcome[];
  flags: HealthFlag[];
}

interface PartResult {
  skipped?: string;
  detail?: Record<string, unknown>;
  /** The part ran but what it ran failed (the cycle command exited 1): recorded as this part's error. */
  error?: string;
}

interface CycleContext {
  flags: HealthFlag[];
  cycleRan: boolean;
}

/** The upkeep lock outlives a cycle command at its default timeout, and is taken over from a holder that died. */
const UPKEEP_LOCK = 'heartbeat-upkeep';
const UPKEEP_LOCK_TTL_MS = 15 * 60_000;
/**
 * A daemon's claim on this cycle's upkeep, held until the next heartbeat tick and never released: a
 * second daemon woken by the same tick finds it and skips, even after the first has finished and let
 * go of UPKEEP_LOCK. A holder that dies loses at most this one cycle.
 */
const CYCLE_CLAIM = 'heartbeat-cycle';
/** PostgreSQL's `cycle.every`: held from one run of the cycle command until `every` ticks later. */
const CYCLE_EVERY = 'cycle-every';
/**
 * Tasks archived per cycle. better-sqlite3 is synchronous: a batch holds the event loop (about 2 ms a
 * task), so a backlog is worked off a few hundred per heartbeat instead of stalling dispatch.
 */
const ARCHIVE_BATCH = 250;

export class Heartbeat {
  private readonly store: Store;
  private readonly config: Config;
  private readonly logger: Logger;
  private readonly now: () => number;
  private isRunning = false;
  private current: Promise<unknown> = Promise.resolve();
  private readonly cycleAbort = new AbortController();
  /** Flags this process already logged: a flag is logged when it appears, not every minute while it lasts. */
  private loggedFlags = new Set<string>();

  constructor(private readonly options: HeartbeatOptions) {
    this.store = options.store;
    this.config = options.config;
    this.logger = options.logger.child({ part: 'heartbeat' });
    this.now = options.now;
    assertCronPattern(options.config.heartbeat.cron, 'heartbeat.cron');
    assertCronPattern(options.config.snapshots.cron, 'snapshots.cron');
  }

  private get db() {
    return sqliteDbOf(this.store);
  }

  private get locks(): LockTable {
    return lockTableOf(this.store);
  }

  private get lockOwner(): string {
    return this.options.host?.sessionId ?? `cli:${process.pid}@${thisHost}`;
  }

  /**
   * Runs one cycle and records it. While an earlier cycle is still running (a long cycle command), only
   * renews the session, so leases never lapse behind slow upkeep; then returns null.
   */
  async runCycle(): Promise<HeartbeatReport | null> {
    if (this.isRunning) {
      await this.runPart('session', { flags: [], cycleRan: false });
      return null;
    }
    this.isRunning = true;
    const cycle = this.runAllParts();
    this.current = cycle.catch(() => undefined);
    try {
      return await cycle;
    } finally {
      this.isRunning = false;
    }
  }

  /** Stops a cycle command in flight (daemon shutdown) and resolves once the cycle under way has ended. */
  async stop(): Promise<void> {
    this.cycleAbort.abort();
    await this.current;
  }

  private async runAllParts(): Promise<HeartbeatReport> {
    const startedAt = this.now();
    const ctx: CycleContext = { flags: [], cycleRan: false };
    const parts: PartOutcome[] = [];
    for (const name of ['session', 'sessions', 'resume', 'flags'] as const) parts.push(await this.runPart(name, ctx));
    const upkeep = ['snapshot', 'retention', 'drill', 'history', 'cycle'] as const;
    let held: true | string;
    try {
      held = this.options.upkeep === false ? 'none: this process drives one task (`cairn run`)' : await this.takeUpkeepLock();
    } catch (e) {
      // A database too busy to take the lock: this cycle's upkeep is skipped and reported, the next one tries again.
      const error = toError(e);
      this.logger.error({ err: error }, `heartbeat: could not take the upkeep lock: ${error.message}; the daemon carries on`);
      parts.push({ name: 'upkeep-lock', ok: false, ms: 0, error: error.message });
      held = 'unknown: the lock could not be read';
    }
    if (held === true) {
      try {
        for (const name of upkeep) parts.push(await this.runPart(name, ctx));
      } finally {
        await this.releaseUpkeepLock();
      }
    } else {
      for (const name of upkeep) parts.push({ name, ok: true, ms: 0, skipped: `upkeep is not this cycle's to do (held by ${held})` });
    }
    const report: HeartbeatReport = { startedAt, finishedAt: this.now(), ok: parts.every((p) => p.ok), parts, flags: ctx.flags };
    this.record(report, ctx);
    return report;
  }

  private async runPart(name: PartName, ctx: CycleContext): Promise<PartOutcome> {
    const started = performance.now();
    try {
      const result = await this.parts[name](ctx);
      const outcome: PartOutcome = { name, ok: result.error === undefined, ms: Math.round(performance.now() - started) };
      if (result.skipped) outcome.skipped = result.skipped;
      if (result.detail) outcome.detail = result.detail;
      if (result.error !== undefined) {
        outcome.error = result.error;
        this.logger.error({ heartbeatPart: name }, `heartbeat part ${name} failed: ${result.error}; the daemon carries on`);
      }
      return outcome;
    } catch (e) {
      const error = toError(e);
      this.logger.error({ heartbeatPart: name, err: error }, `heartbeat part ${name} failed: ${error.message}; the daemon carries on`);
      return { name, ok: false, ms: Math.round(performance.now() - started), error: error.message };
    }
  }

  private record(report: HeartbeatReport, ctx: CycleContext): void {
    const db = this.db;
    if (!db) return; // PostgreSQL: the log lines are the record
    try {
      recordHeartbeat(db, { sessionId: this.options.host?.sessionId ?? null, ...report, cycleRan: ctx.cycleRan });
    } catch (e) {
      this.logger.error({ err: toError(e) }, `could not record the heartbeat: ${toError(e).message}`);
    }
  }

  /**
   * true when this cycle's upkeep is ours to run (we hold the upkeep lock); else who holds it. A daemon
   * first claims the cycle; `cairn heartbeat` (no daemon) only waits for the lock, so run by hand it
   * does the upkeep now unless one is under way.
   */
  private async takeUpkeepLock(): Promise<true | string> {
    const locks = this.locks;
    const now = this.now();
    if (this.options.host) {
      const until = nextTick(this.config.heartbeat.cron, now) ?? now + UPKEEP_LOCK_TTL_MS;
      if (!(await locks.tryLock(CYCLE_CLAIM, this.lockOwner, now, until))) {
        return `${(await locks.holder(CYCLE_CLAIM)) ?? 'unknown'}, which took this cycle's upkeep`;
      }
    }
    const expiresAt = now + UPKEEP_LOCK_TTL_MS;
    if (await locks.tryLock(UPKEEP_LOCK, this.lockOwner, now, expiresAt)) return true;
    const holder = (await locks.holder(UPKEEP_LOCK)) ?? 'unknown';
    if (await this.isHolderGone(holder)) {
      await locks.unlock(UPKEEP_LOCK, holder);
      if (await locks.tryLock(UPKEEP_LOCK, this.lockOwner, now, expiresAt)) return true;
    }
    return holder;
  }

  /** A holder that crashed mid-upkeep must not block the upkeep until its lock expires. */
  private async isHolderGone(holder: string): Promise<boolean> {
    const cli = /^cli:(\d+)@(.*)$/.exec(holder);
    if (cli) return cli[2] === thisHost && !isPidAlive(Number(cli[1]));
    const session = (await this.store.listSessions({ status: 'active' })).find((s) => s.id === holder);
    return session === undefined;
  }

  /**
   * PostgreSQL keeps no heartbeat rows to count cycles by, so a run of the cycle command holds a lock
   * until `every` ticks from now; true when that lock was free (and is now taken), else when it frees.
   * Each attempt is a new owner, so a daemon never re-enters its own hold.
   */
  private async claimEveryNthCycle(every: number): Promise<true | number> {
    const locks = this.locks;
    const now = this.now();
    let until = now;
    for (let i = 0; i < every; i++) until = nextTick(this.config.heartbeat.cron, until) ?? until + UPKEEP_LOCK_TTL_MS;
    // Half a tick early, so the every-th tick, firing a little late, finds it free.
    const tickMs = (nextTick(this.config.heartbeat.cron, until) ?? until + UPKEEP_LOCK_TTL_MS) - until;
    const owner = `${this.lockOwner}#${now}`;
    if (await locks.tryLock(CYCLE_EVERY, owner, now, until - Math.floor(tickMs / 2))) return true;
    return until;
  }

  private async releaseUpkeepLock(): Promise<void> {
    const locks = this.locks;
    try {
      await locks.unlock(UPKEEP_LOCK, this.lockOwner);
    } catch (e) {
      this.logger.warn({ err: toError(e) }, `could not release the upkeep lock: ${toError(e).message}; it expires on its own`);
    }
  }

  private readonly parts: Record<PartName, (ctx: CycleContext) => Promise<PartResult>> = {
    session: async (ctx) => {
      const host = this.options.host;
      const id = host?.sessionId;
      if (!host || !id) return { skipped: 'no daemon session in this process' };
      await this.store.heartbeatSession(id, this.now(), this.config.heartbeat.staleAfter);
      const active = await this.store.listSessions({ status: 'active' });
      if (active.some((s) => s.id === id)) return {};
      const { lost, replacement } = await host.replaceLostSession();
      ctx.flags.push({
        kind: 'session_replaced',
        session: lost,
        message: `session ${lost} was marked stale by another process while it still ran (frozen or starved); it stopped its stages and carries on as session ${replacement}`,
      });
      return { detail: { lost, replacement } };
    },

    sessions: async () => {
      const gone = await markGoneSessions(this.store, this.now(), this.config.heartbeat.staleAfter, this.options.host?.sessionId ?? undefined);
      for (const s of gone) {
        this.logger.warn(
          { session: s.id, pid: s.pid, host: s.host, status: s.status },
          s.status === 'stale'
            ? `session ${s.id} (pid ${s.pid} on ${s.host}) sent no heartbeat for over ${Math.round(this.config.heartbeat.staleAfter / 1000)} s: marked stale; its tasks are resumable`
            : `session ${s.id} (pid ${s.pid}) is gone: marked ${s.status}; its tasks are resumable`,
        );
      }
      return { detail: { marked: gone.map((s) => ({ id: s.id, status: s.status })) } };
    },

    resume: async () => {
      if (!this.options.host) return { skipped: 'no daemon in this process; a daemon resumes on its own heartbeat' };
      const resumed = await this.options.host.resumeInterrupted();
      return resumed.length ? { detail: { resumed } } : {};
    },

    flags: async (ctx) => {
      const now = this.now();
      const flags = [
        ...(await findStuckTasks(this.store, this.config, now, (id) => this.options.host?.runningForMs(id))),
        ...(await findWaitingApprovals(this.store, this.config, now)),
        ...staleSessionFlags(await this.store.listSessions({ status: 'stale' }), now),
      ];
      ctx.flags.push(...flags);
      for (const flag of flags) {
        if (!this.loggedFlags.has(flagKey(flag))) this.logger.warn({ flag: flag.kind, task: flag.task, session: flag.session }, flag.message);
      }
      this.loggedFlags = new Set(flags.map(flagKey));
      return { detail: { count: flags.length } };
    },

    snapshot: async () => {
      if (!this.db) return { skipped: 'snapshots are a SQLite feature' };
      if (this.options.host?.isWritingStartupSnapshot) return { skipped: 'the startup snapshot is still being written' };
      const now = this.now();
      const { snapshotsDir } = locationsOf(this.config);
      const lastAuto = listSnapshots(snapshotsDir).find((s) => AUTOMATIC_KINDS.includes(s.kind)) ?? null;
      if (!isSnapshotDue(this.config.snapshots.cron, lastAuto, now)) {
        const next = nextTick(this.config.snapshots.cron, now);
        return { skipped: `not due${next ? ` (next at ${new Date(next).toISOString()})` : ''}` };
      }
      const { takeSnapshot } = await import('../snapshots/takeSnapshot.js');
      const snapshot = await takeSnapshot({ ...locationsOf(this.config), kind: 'hourly', now, durability: this.config.durability });
      this.logger.info(
        { snapshot: snapshot.name, ms: snapshot.ms, sizeBytes: snapshot.sizeBytes, tasks: snapshot.tasks },
        `snapshot ${snapshot.name} taken (${snapshot.tasks} tasks, ${snapshot.sizeBytes} bytes, ${snapshot.ms} ms)`,
      );
      return { detail: { name: snapshot.name, ms: snapshot.ms, size_bytes: snapshot.sizeBytes } };
    },

    retention: async () => {
      if (!this.db) return { skipped: 'snapshot retention is a SQLite feature' };
      const { applyRetention } = await import('../snapshots/retention.js');
      const result = applyRetention(locationsOf(this.config), this.now(), this.config.snapshots);
      if (result.archived.length || result.deleted.length) {
        this.logger.info(
          { archived: result.archived.length, deleted: result.deleted.length, kept: result.kept.length },
          `retention: ${result.archived.length ? `archived ${result.archived.length}` : `deleted ${result.deleted.length}`} snapshot(s), kept ${result.kept.length}`,
        );
      }
      return { detail: { kept: result.kept.length, archived: result.archived.length, deleted: result.deleted.length } };
    },

    drill: async (ctx) => {
      const db = this.db;
      if (!db) return { skipped: 'restore drills are a SQLite feature' };
      const everyMs = this.config.snapshots.drillEvery;
      if (everyMs === null) return { skipped: 'snapshots.drillEvery is null' };
      const { isDrillDue, runRestoreDrill } = await import('../snapshots/restoreDrill.js');
      const now = this.now();
      if (!isDrillDue(db, now, everyMs)) return { skipped: 'not due' };
      const drill = await runRestoreDrill(db, locationsOf(this.config).snapshotsDir, now);
      if (drill.ok) {
        this.logger.info({ snapshot: drill.snapshot }, `restore drill passed: ${drill.message}`);
      } else {
        this.logger.error({ snapshot: drill.snapshot, checks: drill.checks }, `restore drill FAILED: ${drill.message}`);
        ctx.flags.push({ kind: 'drill_failed', message: `the last restore drill failed: ${drill.message}` });
      }
      return { detail: { snapshot: drill.snapshot, ok: drill.ok } };
    },

    history: async () => {
      const keepDays = this.config.history.keepDays;
      if (keepDays === null) return { skipped: 'history.keepDays is not set' };
      const db = this.db;
      if (!db) return { skipped: 'history archives are a SQLite feature' };
      const { archiveOldTasks } = await import('../snapshots/historyArchive.js');
      const result = archiveOldTasks(db, locationsOf(this.config).archiveDir, this.now(), keepDays, ARCHIVE_BATCH);
      if (result.archived.length) {
        this.logger.info(
          { archived: result.archived.length, files: result.files },
          `history: moved ${result.archived.length} task(s) finished over ${keepDays} day(s) ago to ${result.files.join(', ')}`,
        );
      }
      return { detail: { archived: result.archived.length, held: result.held.length, files: result.files } };
    },

    cycle: async (ctx) => {
      const cycle = this.config.cycle;
      if (!cycle) return { skipped: 'no cycle command configured' };
      const db = this.db;
      if (db && cycle.every > 1) {
        const since = cyclesSinceCycleRan(db) + 1;
        if (since < cycle.every) return { skipped: `runs every ${cycle.every} cycles; this is ${since}` };
      } else if (cycle.every > 1) {
        const notBefore = await this.claimEveryNthCycle(cycle.every);
        if (notBefore !== true) return { skipped: `runs every ${cycle.every} cycles; next at ${new Date(notBefore).toISOString()}` };
      }
      ctx.cycleRan = true;
      const outcome = await runCycleCommand({
        config: this.config,
        engine: this.options.engine,
        logger: this.logger.child({ part: 'cycle' }),
        now: this.now(),
        signal: this.cycleAbort.signal,
      });
      const detail = { submitted: outcome.submitted, skipped: outcome.skipped.length };
      return outcome.failure ? { detail, error: `the cycle command failed: ${outcome.failure}` } : { detail };
    },
  };
}

type PartName = 'session' | 'sessions' | 'resume' | 'flags' | 'snapshot' | 'retention' | 'drill' | 'history' | 'cycle';

const flagKey = (f: HealthFlag) => `${f.kind}:${f.task ?? ''}:${f.session ?? ''}`;
