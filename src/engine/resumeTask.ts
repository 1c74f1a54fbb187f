/**
 * Resuming an interrupted task, one way for every caller: `cairn resume`, the daemon's resume pass and
 * the library's `resume`. Stages run detached, so a kill -9 of their daemon does not reach them: a dead
 * daemon's stage program may still be running, and is ended before the RESUME is written, or the stage
 * would run twice at once. (When each caller put this together itself, the library's forgot that step.)
 */
import type { SessionRecord, StageRunRecord, TaskRecord } from '../store/store.js';
import { LeftoverStageProcesses } from '../process/leftoverStageProcesses.js';
import { isSessionGone, markGoneSessions } from '../process/sessions.js';
import type { Engine, StepResult } from './engine.js';

export interface ResumedTask extends StepResult {
  /** The interrupted run whose leftover processes on this host were ended, or null when none were running. */
  endedLeftover: StageRunRecord | null;
}

/**
 * Marks gone sessions, then resumes one task (ResumePass.resume). Writes session rows and the RESUME
 * transition; may SIGKILL a dead session's stage process group on this host.
 */
export async function resumeTask(engine: Engine, taskId: number, actor: string): Promise<ResumedTask> {
  await markGoneSessions(engine.store, engine.now(), engine.config.heartbeat.staleAfter);
  return new ResumePass(engine).resume(await engine.getTask(taskId), actor);
}

/**
 * One or many resumes that share their reads: the sessions, the open runs and this host's processes
 * are read once for the pass, not once per task (a restart after a crash may resume thousands). The
 * caller has marked gone sessions first (resumeTask does; the daemon does at start and each heartbeat).
 */
export class ResumePass {
  private sessions?: Promise<Map<string, SessionRecord>>;
  private readonly leftovers: LeftoverStageProcesses;

  constructor(private readonly engine: Engine) {
    this.leftovers = new LeftoverStageProcesses(engine.store, engine.config.dataDir);
  }

  /**
   * Resumes `task`, a record just read: refused (nothing done) while a live session holds its lease;
   * otherwise ends what its dead session's run left running here, then writes RESUME.
   */
  async resume(task: TaskRecord, actor: string): Promise<ResumedTask> {
    const isLive = await this.isLeaseLive(task);
    const endedLeftover = task.lease && !isLive ? await this.leftovers.end(task) : null;
    return { ...(await this.engine.resume(task, actor, async () => isLive)), endedLeftover };
  }

  /** Whether the task's lease belongs to a session that is still running it. */
  private async isLeaseLive(task: TaskRecord): Promise<boolean> {
    if (!task.lease) return false;
    const now = this.engine.now();
    if (task.lease.expiresAt < now) return false;
    this.sessions ??= this.engine.store.listSessions().then((all) => new Map(all.map((s) => [s.id, s])));
    const session = (await this.sessions).get(task.lease.owner);
    return session !== undefined && !isSessionGone(session, now, this.engine.config.heartbeat.staleAfter);
  }
}
