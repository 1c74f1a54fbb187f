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

/**
 * The run mark process `pid` carries in its environment (Linux /proc): null when it carries none, or
 * when it cannot be read (gone, or another user's).
 */
function runMarkOf(pid: number): RunMark | null {
  let env: string[];
  try {
    env = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
  } catch {
    return null;
  }
  const valueOf = (name: string) => env.find((v) => v.startsWith(`${name}=`))?.slice(name.length + 1);
  const runId = valueOf('CAIRN_RUN_ID');
  const dataDir = valueOf('CAIRN_DATA_DIR');
  return runId === undefined || dataDir === undefined ? null : { runId, dataDir };
}

function carriesRunId(pid: number, mark: RunMark): boolean {
  const carried = runMarkOf(pid);
  return carried !== null && carried.runId === mark.runId && carried.dataDir === mark.dataDir;
}

/** This installation's stage processes on this host by run id, read once from every process's environment. */
function processesByRunId(dataDir: string): Map<string, number[]> {
  const byRun = new Map<string, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return byRun; // not Linux: the recorded process group is all there is to go on
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const mark = runMarkOf(pid);
    if (mark === null || mark.dataDir !== dataDir) continue;
    byRun.set(mark.runId, [...(byRun.get(mark.runId) ?? []), pid]);
  }
  return byRun;
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
 * `carrying` is processesByRunId read once for many runs; without it /proc is read for this run.
 */
export function endOrphanedRun(run: Pick<StageRunRecord, 'pgid' | 'runId'>, dataDir: string, carrying?: Map<string, number[]>): boolean {
  const mark = { runId: run.runId, dataDir };
  let signalled = false;
  if (run.pgid && run.pgid > 1 && carriesRunId(run.pgid, mark)) signalled = sigkill(-run.pgid);
  for (const pid of (carrying ?? processesByRunId(dataDir)).get(run.runId) ?? []) signalled = sigkill(pid) || signalled;
  return signalled;
}

/**
 * Ends what interrupted tasks' open runs left running on this host (a run from another host is that
 * host's to end). One per resume pass: the sessions' hosts, the open runs and this host's processes
 * are read once for all its tasks, not once per task (a restart after a crash may resume thousands).
 */
export class LeftoverStageProcesses {
  private hosts?: Promise<Map<string, string>>;
  private openRuns?: Promise<Map<number, StageRunRecord>>;
  private carrying?: Map<string, number[]>;

  constructor(
    private readonly store: Store,
    private readonly dataDir: string,
  ) {}

  /** Returns the run whose processes were signalled, or null. */
  async end(task: TaskRecord): Promise<StageRunRecord | null> {
    this.hosts ??= this.store.listSessions().then((sessions) => new Map(sessions.map((s) => [s.id, s.host])));
    const hosts = await this.hosts;
    // The open run is the lease holder's: a task leased by another host's session is not ours to read.
    const leaseHost = task.lease ? hosts.get(task.lease.owner) : undefined;
    if (leaseHost !== undefined && leaseHost !== thisHost) return null;
    // Read once for the pass, like the hosts: a task the pass resumes was interrupted before the pass
    // began, so its open run is already there; a run opened later belongs to a live session.
    this.openRuns ??= this.store.listOpenRuns().then((runs) => new Map(runs.map((r) => [r.taskId, r])));
    const open = (await this.openRuns).get(task.id);
    // Without a recorded group (the daemon died between spawn and recording it) the run id still finds them.
    if (!open) return null;
    const owner = hosts.get(open.sessionId);
    if (owner !== undefined && owner !== thisHost) return null;
    this.carrying ??= processesByRunId(this.dataDir);
    return endOrphanedRun(open, this.dataDir, this.carrying) ? open : null;
  }
}
