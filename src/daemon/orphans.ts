/**
 * Ends a stage process group left running by a daemon that died (stages run detached, so a kill -9 of
 * the daemon does not reach them). Without this a resumed stage could run twice at once.
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { StageRunRecord, Store, TaskRecord } from '../store/store.js';
import { thisHost } from './sessions.js';

/** Whether the process `pid` carries this run's CAIRN_RUN_ID (Linux /proc); null when it cannot tell. */
function carriesRunId(pid: number, runId: string): boolean | null {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`CAIRN_RUN_ID=${runId}`);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? null : false;
  }
}

/**
 * Processes on this host that carry the run's CAIRN_RUN_ID: its descendants, also those that left its
 * process group (setsid, a double fork). Linux only; [] without /proc. Reads every process's
 * environment, so it runs only when a dead session's run is ended, never per stage.
 */
function pidsCarryingRunId(runId: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid && carriesRunId(Number(e), runId) === true).map(Number);
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
 * SIGKILLs the run's process group if it is still there, then any process carrying the run's id that
 * escaped the group. A group id cannot be reused while the group has members, so when the leader is
 * gone the id is still ours; when the leader lives, its environment must name our run. Returns whether
 * a signal was sent.
 */
export function endOrphanedRun(run: Pick<StageRunRecord, 'pgid' | 'runId'>): boolean {
  let signalled = false;
  if (run.pgid && run.pgid > 1 && carriesRunId(run.pgid, run.runId) !== false) signalled = sigkill(-run.pgid);
  for (const pid of pidsCarryingRunId(run.runId)) signalled = sigkill(pid) || signalled;
  return signalled;
}

/**
 * Ends what an interrupted task's open run left running on this host (a run from another host is
 * that host's to end). Returns the run whose processes were signalled, or null.
 */
export async function endLeftoverRun(store: Store, task: TaskRecord): Promise<StageRunRecord | null> {
  const open = (await store.getStageRuns(task.id)).find((r) => r.outcome === null);
  // Without a recorded group (the daemon died between spawn and recording it) the run id still finds them.
  if (!open) return null;
  const owner = (await store.listSessions()).find((s) => s.id === open.sessionId);
  if (owner && owner.host !== thisHost) return null;
  return endOrphanedRun(open) ? open : null;
}
