/**
 * What needs a human, found the same way by the heartbeat (which logs it) and by `cairn status`
 * (which shows it): stages running past their timeout, approvals waiting past
 * `heartbeat.approvalReminderAfter`, and sessions recently marked stale.
 */
import type { Config } from '../config.js';
import type { SessionRecord, StageRunRecord, Store } from '../store/store.js';
import type { HealthFlag } from './heartbeatLog.js';

/**
 * A stage's own timer kills it at its timeout (SIGKILL 2 s later); one still leased this long after
 * is not being watched by anyone: its daemon is hung, frozen or starved.
 */
const STUCK_GRACE_MS = 10_000;
/** A stale session stays in the flags this long after it was marked. */
const STALE_SESSION_FLAG_MS = 86_400_000;

export function formatDuration(ms: number): string {
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 172_800_000) return `${Math.round(ms / 3_600_000)} h`;
  return `${Math.round(ms / 86_400_000)} days`;
}

/** A leased stage run past its configured timeout (and STUCK_GRACE_MS). */
export interface StuckRun {
  run: StageRunRecord;
  /** The session holding the task's lease. */
  session: string;
  ranMs: number;
  timeoutMs: number;
}

/**
 * Leased stages running past their configured timeout, longest over first. Reads the store. `ranForMs`
 * gives the monotonic run time of stages this process runs itself, so a wall-clock jump cannot make them
 * look stuck; other processes' stages are judged by wall time, the only clock they share.
 */
export async function findStuckRuns(
  store: Store,
  config: Config,
  now: number,
  ranForMs: (taskId: number) => number | undefined = () => undefined,
): Promise<StuckRun[]> {
  const stuck: StuckRun[] = [];
  const tasks = await store.listTasks({ status: 'in_progress' });
  // One read of every open run, not one per task: this runs on every heartbeat, with every stage in
  // flight. Read after the tasks, so a run that ended in between is not judged as still running.
  const openRuns = new Map((await store.listOpenRuns()).map((r) => [r.taskId, r]));
  for (const task of tasks) {
    if (!task.lease) continue;
    const run = openRuns.get(task.id);
    if (!run) continue;
    const spec = config.stages[run.stage];
    const timeoutMs = 'timeout' in spec ? spec.timeout : undefined;
    if (timeoutMs === undefined) continue;
    const ranMs = ranForMs(task.id) ?? now - run.startedAt;
    if (ranMs <= timeoutMs + STUCK_GRACE_MS) continue;
    stuck.push({ run, session: task.lease.owner, ranMs, timeoutMs });
  }
  return stuck.sort((a, b) => b.ranMs - b.timeoutMs - (a.ranMs - a.timeoutMs));
}

/** findStuckRuns as flags, in task order. Reads the store. */
export async function findStuckTasks(
  store: Store,
  config: Config,
  now: number,
  ranForMs: (taskId: number) => number | undefined = () => undefined,
): Promise<HealthFlag[]> {
  const stuck = (await findStuckRuns(store, config, now, ranForMs)).sort((a, b) => a.run.taskId - b.run.taskId);
  return stuck.map(({ run, session, ranMs, timeoutMs }) => ({
    kind: 'stuck',
    task: run.taskId,
    session,
    message:
      `task ${run.taskId} has been in its ${run.stage} stage (attempt ${run.attempt}) for ${formatDuration(ranMs)}, past its timeout of ${formatDuration(timeoutMs)}; ` +
      `session ${session} may be hung: check that daemon, or \`cairn cancel ${run.taskId}\``,
  }));
}

/** Tasks at an approval gate for longer than `heartbeat.approvalReminderAfter`. Reads the store. */
export async function findWaitingApprovals(store: Store, config: Config, now: number): Promise<HealthFlag[]> {
  const flags: HealthFlag[] = [];
  for (const task of await store.listTasks({ status: 'awaiting_approval' })) {
    const waitedMs = now - task.updatedAt;
    if (waitedMs <= config.heartbeat.approvalReminderAfter) continue;
    flags.push({
      kind: 'approval_waiting',
      task: task.id,
      message: `task ${task.id} has waited ${formatDuration(waitedMs)} at ${task.state}; \`cairn approve ${task.id}\` or \`cairn reject ${task.id} --reason …\``,
    });
  }
  return flags;
}

/** Sessions marked stale in the last day: a daemon that stopped answering without dying. Pure. */
export function staleSessionFlags(sessions: SessionRecord[], now: number): HealthFlag[] {
  return sessions
    .filter((s) => s.status === 'stale' && now - (s.endedAt ?? s.lastHeartbeatAt) < STALE_SESSION_FLAG_MS)
    .map((s) => ({
      kind: 'stale_session',
      session: s.id,
      message:
        `session ${s.id} (pid ${s.pid} on ${s.host}) sent no heartbeat after ${new Date(s.lastHeartbeatAt).toISOString()} and was marked stale; ` +
        'its tasks were freed for resume. If that process is still there, it was frozen or starved: check it',
    }));
}
