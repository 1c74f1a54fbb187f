/**
 * `cairn logs ID [--stage S] [--attempt N] [--follow]`: one stage run's log, as the executor wrote it to
 * `<dataDir>/logs/<task>/<stage>-<attempt>.log`. Without flags, the task's most recent run; --stage picks
 * a stage (its latest attempt), --attempt an attempt (of that stage, else of the stage that ran last).
 * --follow streams the log until the store records the run as ended (followLog.ts, loaded only then).
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { finished } from 'node:stream/promises';
import { STAGES, type StageName } from '../../machines/taskStates.js';
import type { Config } from '../config.js';
import { StageLogError, TaskNotFoundError, UsageError } from '../errors.js';
import { stageLogPath, stageLogsDir } from '../executors/stageLogPath.js';
import type { StageRunRecord, Store, TaskRecord } from '../store/store.js';
import { parsePositiveInt, parseTaskId, withStore, type GlobalOptions } from './context.js';
import { iso } from '../taskJson.js';

export interface LogsOptions {
  stage?: string;
  attempt?: string;
  follow?: boolean;
  json?: boolean;
}

export async function run(idArg: string, opts: LogsOptions, global: GlobalOptions): Promise<void> {
  const id = parseTaskId(idArg);
  if (opts.stage !== undefined && !STAGES.includes(opts.stage as StageName)) {
    throw new UsageError(`--stage ${opts.stage} is not a stage; use one of ${STAGES.join(', ')}`);
  }
  const attempt = opts.attempt === undefined ? undefined : parsePositiveInt(opts.attempt, '--attempt');
  if (opts.follow && opts.json) throw new UsageError('--follow streams the log as text; drop --json, or drop --follow for the log as JSON');
  await withStore(global, async ({ config, store }) => {
    const task = await store.getTask(id);
    if (!task) throw new TaskNotFoundError(id);
    const runs = await store.getStageRuns(id);
    const chosen = pickRun(task, runs, opts.stage as StageName | undefined, attempt);
    const file = stageLogPath(stageLogsDir(config.dataDir), id, chosen.stage, chosen.attempt);
    const isOpen = chosen.outcome === null;
    if (opts.follow) {
      // Not written yet is fine while the run is open on this host: the follower waits for the file.
      if (!existsSync(file) && !(isOpen && (await isRunHere(store, chosen)))) throw await missingLog(config, store, chosen, file);
      const { followRun } = await import('./followLog.js');
      return followRun({ config, store, run: chosen, file });
    }
    if (!existsSync(file)) throw await missingLog(config, store, chosen, file);
    if (opts.json) {
      process.stdout.write(
        `${JSON.stringify({
          task: id,
          stage: chosen.stage,
          attempt: chosen.attempt,
          run_id: chosen.runId,
          started_at: iso(chosen.startedAt),
          finished_at: iso(chosen.finishedAt),
          outcome: chosen.outcome,
          path: file,
          log: readFileSync(file, 'utf8'),
        })}\n`,
      );
      return;
    }
    // Streamed: a log can be far larger than anyone wants in memory at once.
    const stream = createReadStream(file);
    stream.pipe(process.stdout, { end: false });
    await finished(stream);
    if (isOpen) {
      process.stderr.write(
        `cairn: task ${id}'s ${chosen.stage} attempt ${chosen.attempt} has no result yet (it is running, or its daemon stopped mid-run); \`cairn logs ${id} --follow\` prints the rest as it comes\n`,
      );
    }
  });
}

/** The run the flags name, or an error that says which runs there are. Pure. */
export function pickRun(task: TaskRecord, runs: StageRunRecord[], stage: StageName | undefined, attempt: number | undefined): StageRunRecord {
  if (runs.length === 0) {
    throw new StageLogError(
      `task ${task.id} has no stage runs yet (it is ${task.state}), so there is no log; a daemon runs its next stage: \`cairn status\` shows whether one is running, \`cairn start\` starts one`,
    );
  }
  // getStageRuns is oldest first: the last is the run that started most recently.
  const latest = runs[runs.length - 1];
  const wanted = stage ?? latest.stage;
  const ofStage = runs.filter((r) => r.stage === wanted).sort((a, b) => a.attempt - b.attempt);
  if (ofStage.length === 0) {
    throw new StageLogError(`task ${task.id} has no ${wanted} run yet (it ran: ${describeRuns(runs)}); \`cairn logs ${task.id} --stage ${latest.stage}\` shows the last stage that ran`);
  }
  if (attempt === undefined) return ofStage[ofStage.length - 1];
  const found = ofStage.find((r) => r.attempt === attempt);
  if (!found) {
    throw new StageLogError(
      `task ${task.id}'s ${wanted} stage has no attempt ${attempt}; it has attempt${ofStage.length > 1 ? 's' : ''} ${ofStage.map((r) => r.attempt).join(', ')}`,
    );
  }
  return found;
}

/** `plan 1, implement 1-2`: each stage with its attempts. */
function describeRuns(runs: StageRunRecord[]): string {
  const byStage = new Map<string, number[]>();
  for (const r of runs) byStage.set(r.stage, [...(byStage.get(r.stage) ?? []), r.attempt]);
  return [...byStage].map(([s, attempts]) => `${s} ${attempts.length > 1 ? `${Math.min(...attempts)}-${Math.max(...attempts)}` : attempts[0]}`).join(', ');
}

async function sessionOf(store: Store, run: StageRunRecord) {
  return (await store.listSessions()).find((s) => s.id === run.sessionId) ?? null;
}

async function isRunHere(store: Store, run: StageRunRecord): Promise<boolean> {
  const { thisHost } = await import('../process/sessions.js');
  const session = await sessionOf(store, run);
  return !session || session.host === thisHost;
}

/** Why a run's log is not where this process looks, and what to do about it. Reads the store. */
async function missingLog(config: Config, store: Store, run: StageRunRecord, file: string): Promise<StageLogError> {
  const { thisHost } = await import('../process/sessions.js');
  const what = `task ${run.taskId}'s ${run.stage} attempt ${run.attempt}`;
  const session = await sessionOf(store, run);
  if (session && session.host !== thisHost) {
    return new StageLogError(
      `${what} ran on host ${session.host} (session ${session.id}), and its log stays on that host: run \`cairn logs\` there, or read ${file} on ${session.host}`,
    );
  }
  // Not a command: a module, or a function handed to the library API. Either logs only when it has to.
  if (!('run' in config.stages[run.stage])) {
    return new StageLogError(`${what} wrote no log: a module stage writes ${file} only when it has something to report (it threw, or its output was cut at limits.outputBytes)`);
  }
  if (run.outcome === null) {
    return new StageLogError(`${what} has started but has not created its log yet; \`cairn logs ${run.taskId} --follow\` waits for it`);
  }
  return new StageLogError(
    `${what} has no log at ${file}: it was removed, or this is not the data directory the daemon used; pass the daemon's --data-dir or --config`,
  );
}
