/**
 * One claimed stage run, start to end: run the stage, then record its result fenced by the run's
 * lease, trying again while the database cannot be reached. The daemon decides when a run starts and
 * what happens to its slot afterwards; this module only carries one run through.
 */
import type { Logger } from 'pino';
import type { StageName } from '../../machines/task.machine.js';
import type { Config } from '../config.js';
import { CairnError, StageResultRefused, StoreUnavailableError, toError } from '../errors.js';
import type { ClaimFor, Engine } from './engine.js';
import { buildStageInput, toStageEvent } from './stageRun.js';
import { resolveStage } from '../executors/resolveStage.js';
import { runStage } from '../executors/runStage.js';
import { stageLogPath } from '../executors/stageLogPath.js';
import type { ModuleStageFn, StageResult } from '../executors/types.js';
import { openTaskKeyValueState } from '../state/openTaskKeyValueState.js';
import type { ClaimedRun, Store, TaskRecord } from '../store/store.js';
import { crashPoint } from '../process/crashPoints.js';

/** What a run needs from the daemon that claimed it. */
export interface RunContext {
  config: Config;
  store: Store;
  engine: Engine;
  executors?: Partial<Record<StageName, ModuleStageFn>>;
  /** `<dataDir>/logs`, absolute and normalised. */
  logsDir: string;
  now(): number;
  /** Who results are recorded as: the daemon's session. */
  actor(): string;
  /** The claim a result asks for its next stage (none while the daemon stops). */
  claimFor(): ClaimFor;
}

export interface RunEnd {
  /** The task as its result left it; absent when nothing was recorded (stopped, or refused). */
  recorded?: TaskRecord;
  /** The next stage's run, when the result claimed it. */
  next?: ClaimedRun;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs a claimed stage and records its result. Throws only what cairn itself failed at. */
export async function carryOutRun(ctx: RunContext, claim: ClaimedRun, signal: AbortSignal, log: Logger): Promise<RunEnd> {
  const { task, run, lease } = claim;
  const identity = { taskId: task.id, stage: run.stage, attempt: run.attempt, runId: run.runId };
  const logFile = stageLogPath(ctx.logsDir, task.id, run.stage, run.attempt);
  log.info(`task ${task.id}: ${run.stage} attempt ${run.attempt} started`);
  let result: StageResult;
  try {
    const stage = resolveStage(ctx.config, run.stage, identity, ctx.executors);
    result = await runStage({
      input: buildStageInput(task, run.stage, run.attempt, run.runId),
      stage,
      dataDir: ctx.config.dataDir,
      logFile,
      outputBytes: ctx.config.limits.outputBytes,
      signal,
      logger: log,
      state: openTaskKeyValueState(ctx.config, ctx.store, task.id),
      onSpawn: (pgid) => {
        ctx.store.recordRunProcess(task.id, run.stage, run.attempt, pgid).catch((e) =>
          log.warn({ err: toError(e) }, `could not record the process group of task ${task.id}`),
        );
      },
    });
  } catch (e) {
    const message = e instanceof CairnError ? e.message : `cannot run stage ${run.stage}: ${toError(e).message}`;
    result = { ok: false, reason: 'spawn', message, exitCode: null, signal: null };
  }
  crashPoint('after-stage-exit');
  if (!result.ok && result.reason === 'aborted') {
    log.info(`task ${task.id}: ${run.stage} attempt ${run.attempt} stopped; nothing recorded`);
    return {};
  }
  const event = toStageEvent(run.stage, run.attempt, result, ctx.now());
  try {
    const { task: after, claimed } = await recordPatiently(ctx, task.id, event, lease.token, signal, log);
    crashPoint('after-result');
    if (event.type === 'STAGE_SUCCEEDED') {
      const verdict = run.stage === 'review' ? ` with verdict ${(event.output as { verdict: string }).verdict}` : '';
      log.info({ state: after.state }, `task ${task.id}: ${run.stage} attempt ${run.attempt} finished${verdict}; now ${after.state}`);
    } else {
      log.warn({ state: after.state, reason: event.reason, exitCode: event.exitCode }, `task ${task.id}: ${run.stage} attempt ${run.attempt} failed (${event.message}); now ${after.state}`);
    }
    return { recorded: after, next: claimed };
  } catch (e) {
    if (e instanceof StageResultRefused) {
      log.warn({ reason: e.reason }, `task ${task.id}: result of ${run.stage} attempt ${run.attempt} refused: ${e.message}`);
      return {};
    }
    throw e;
  }
}

/**
 * Records a finished stage's result, trying again while the database cannot be reached (a PostgreSQL
 * restart, a cut connection): the stage already ran, and dropping its result would leave the task
 * leased to this live session with nothing running. Safe to repeat: the write is version-checked and
 * fenced by the lease token. Gives up only when the run is stopped (cancel, shutdown).
 */
async function recordPatiently(
  ctx: RunContext,
  taskId: number,
  event: Parameters<Engine['recordStageResult']>[1],
  leaseToken: number,
  signal: AbortSignal,
  log: Logger,
): Promise<Awaited<ReturnType<Engine['recordStageResult']>>> {
  for (let waitMs = 250; ; waitMs = Math.min(waitMs * 2, 2000)) {
    try {
      return await ctx.engine.recordStageResult(taskId, event, ctx.actor(), leaseToken, ctx.claimFor());
    } catch (e) {
      if (!(e instanceof StoreUnavailableError) || signal.aborted) throw e;
      log.warn({ err: toError(e) }, `task ${taskId}: cannot record the result of ${event.stage} attempt ${event.attempt} yet (${e.message}); trying again in ${waitMs} ms`);
      await sleep(waitMs);
    }
  }
}
