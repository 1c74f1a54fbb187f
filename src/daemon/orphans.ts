/**
 * Ends a stage process group left running by a daemon that died (stages run detached, so a kill -9 of
 * the daemon does not reach them). Without this a resumed stage could run twice at once.
 */
import { readFileSync } from 'node:fs';
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
 * SIGKILLs the run's process group if it is still there. A group id cannot be reused while the group
 * has members, so when the leader is gone the id is still ours; when the leader lives, its
 * environment must name our run. Returns whether a signal was sent.
 */
export function endOrphanedRun(run: Pick<StageRunRecord, 'pgid' | 'runId'>): boolean {
  if (!run.pgid || run.pgid <= 1) return false;
  const isOurs = carriesRunId(run.pgid, run.runId);
  if (isOurs === false) return false;
  try {
    process.kill(-run.pgid, 'SIGKILL');
    return true;
  } catch {
    return false; // ESRCH: nothing left
  }
}

/**
 * Ends what an interrupted task's open run left running on this host (a run from another host is
 * that host's to end). Returns the run whose group was signalled, or null.
 */
export async function endLeftoverRun(store: Store, task: TaskRecord): Promise<StageRunRecord | null> {
  const open = (await store.getStageRuns(task.id)).find((r) => r.outcome === null);
  if (!open?.pgid) return null;
  const owner = (await store.listSessions()).find((s) => s.id === open.sessionId);
  if (owner && owner.host !== thisHost) return null;
  return endOrphanedRun(open) ? open : null;
}
