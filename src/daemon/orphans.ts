/**
 * Ends a stage process group left running by a daemon that died (stages run detached, so a kill -9 of
 * the daemon does not reach them). Without this a resumed stage could run twice at once.
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { StageRunRecord, Store, TaskRecord } from '../store/store.js';
import { thisHost } from './sessions.js';

/**
 * A run as its processes carry it: CAIRN_RUN_ID alone ("3.plan.1") repeats across cairn installations
 * on one host, so the data directory (CAIRN_DATA_DIR) must match too.
 */
export interface RunMark {
  runId: string;
  dataDir: string;
}

/** Whether the process `pid` carries this run's mark (Linux /proc); null when it cannot tell. */
function carriesRunId(pid: number, mark: RunMark): boolean | null {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    return env.includes(`CAIRN_RUN_ID=${mark.runId}`) && env.includes(`CAIRN_DATA_DIR=${mark.dataDir}`);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? null : false;
  }
}

/**
 * Processes on this host that carry the run's CAIRN_RUN_ID: its descendants, also those that left its
 * process group (setsid, a double fork). Linux only; [] without /proc. Reads every process's
 * environment, so it runs only when a dead session's run is ended, never per stage.
 */
function pidsCarryingRunId(mark: RunMark): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid && carriesRunId(Number(e), mark) === true).map(Number);
}

function sigkill(pid: number): boolean {
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false; // ESRCH: nothing left
  }
}

/**
 * SIGKILLs the run's process group while its leader still carries the run's id, then every process
 * carrying the run's id (members whose leader is gone, and those that escaped the group). The group is
 * never signalled on its id alone: once all its members are gone the id can be reused by a stranger's
 * new process group (another cairn's stage, on a busy host). Returns whether a signal was sent.
 */
export function endOrphanedRun(run: Pick<StageRunRecord, 'pgid' | 'runId'>, dataDir: string): boolean {
  const mark = { runId: run.runId, dataDir };
  let signalled = false;
  if (run.pgid && run.pgid > 1 && carriesRunId(run.pgid, mark) === true) signalled = sigkill(-run.pgid);
  for (const pid of pidsCarryingRunId(mark)) signalled = sigkill(pid) || signalled;
  return signalled;
}

/**
 * Ends what an interrupted task's open run left running on this host (a run from another host is
 * that host's to end). Returns the run whose processes were signalled, or null.
 */
export async function endLeftoverRun(store: Store, task: TaskRecord, dataDir: string): Promise<StageRunRecord | null> {
  const open = (await store.getStageRuns(task.id)).find((r) => r.outcome === null);
  // Without a recorded group (the daemon died between spawn and recording it) the run id still finds them.
  if (!open) return null;
  const owner = (await store.listSessions()).find((s) => s.id === open.sessionId);
  if (owner && owner.host !== thisHost) return null;
  return endOrphanedRun(open, dataDir) ? open : null;
}
