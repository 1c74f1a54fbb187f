/**
 * What the zero-parse views say. `.state` files are key=value lines a shell script can read with
 * `source` or `grep`; the markdown is for people and agents that read files rather than run commands.
 * Pure: everything they show is passed in.
 */
import type { SessionRecord, TaskRecord } from '../store/store.js';

const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? '' : new Date(ms).toISOString());

/** A task's view: at most 160 bytes (id, state, status, stage, attempt, updated). */
export function renderTaskState(task: TaskRecord): string {
  const stage = task.runStage ?? '';
  const attempt = task.runStage ? String(task.runAttempt ?? '') : '';
  return `id=${task.id}\nstate=${task.state}\nstatus=${task.status}\nstage=${stage}\nattempt=${attempt}\nupdated=${iso(task.updatedAt)}\n`;
}

export interface CurrentState {
  session: SessionRecord | null;
  isRunning: boolean;
  running: number;
  waiting: number;
  pending: number;
  failed: number;
  at: number;
}

export function renderCurrentState(c: CurrentState): string {
  return [
    `session=${c.session?.id ?? ''}`,
    `status=${c.isRunning ? 'running' : 'stopped'}`,
    `running=${c.running}`,
    `waiting=${c.waiting}`,
    `pending=${c.pending}`,
    `failed=${c.failed}`,
    `last_heartbeat=${iso(c.session?.lastHeartbeatAt)}`,
    `updated=${iso(c.at)}`,
    '',
  ].join('\n');
}

function oneLine(text: string, width = 80): string {
  const flat = text.replace(/\s+/g, ' ').replace(/\|/g, '\\|');
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat;
}

function ago(ms: number, now: number): string {
  const minutes = Math.max(0, Math.round((now - ms) / 60_000));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.round(hours / 24)} days`;
}

export function renderCurrentStateMd(c: CurrentState, inProgress: TaskRecord[], awaiting: TaskRecord[]): string {
  const lines = [`# cairn: current state`, '', `Updated ${iso(c.at)}.`, ''];
  lines.push(
    c.isRunning && c.session
      ? `Daemon running: session \`${c.session.id}\`, pid ${c.session.pid} on ${c.session.host}, last heartbeat ${iso(c.session.lastHeartbeatAt)}.`
      : 'No daemon is running. Start one with `cairn start`.',
    '',
    `## Running now (${inProgress.length})`,
    '',
  );
  if (inProgress.length === 0) lines.push('Nothing.');
  else {
    lines.push('| task | state | stage | attempt | request |', '|---|---|---|---|---|');
    for (const t of inProgress) lines.push(`| ${t.id} | ${t.state} | ${t.runStage ?? ''} | ${t.runAttempt ?? ''} | ${oneLine(t.request)} |`);
  }
  lines.push('', `## Waiting for approval (${awaiting.length})`, '');
  if (awaiting.length === 0) lines.push('Nothing.');
  else {
    lines.push('| task | gate | waiting | request | to decide |', '|---|---|---|---|---|');
    for (const t of awaiting) {
      lines.push(`| ${t.id} | ${t.state} | ${ago(t.updatedAt, c.at)} | ${oneLine(t.request)} | \`cairn approve ${t.id}\` or \`cairn reject ${t.id} --reason …\` |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function renderNextStepsMd(pending: TaskRecord[], byId: Map<number, TaskRecord>, at: number): string {
  const lines = ['# cairn: next steps', '', `Updated ${iso(at)}. Pending tasks in the order a daemon starts them.`, ''];
  if (pending.length === 0) lines.push('No pending tasks.');
  pending.forEach((t, i) => {
    const waits = t.dependsOn.filter((d) => byId.get(d)?.state !== 'completed');
    const after = waits.length ? ` (waits for ${waits.map((d) => `#${d} ${byId.get(d)?.state ?? 'unknown'}`).join(', ')})` : '';
    lines.push(`${i + 1}. #${t.id} [${t.priority}] ${oneLine(t.request)}${after}`);
  });
  return `${lines.join('\n')}\n`;
}

export function renderBlockersMd(failed: TaskRecord[], awaiting: TaskRecord[], staleSessions: SessionRecord[], at: number): string {
  const lines = ['# cairn: blockers', '', `Updated ${iso(at)}.`, '', `## Failed tasks (${failed.length})`, ''];
  if (failed.length === 0) lines.push('None.');
  for (const t of failed) {
    const error = t.snapshot.context.error;
    lines.push(`- #${t.id} ${oneLine(t.request, 60)}: ${error ? oneLine(error.message, 160) : 'no error recorded'}. Retry with \`cairn retry ${t.id}\`.`);
  }
  lines.push('', `## Approvals waiting (${awaiting.length})`, '');
  if (awaiting.length === 0) lines.push('None.');
  for (const t of awaiting) lines.push(`- #${t.id} at ${t.state} for ${ago(t.updatedAt, at)}: ${oneLine(t.request, 60)}`);
  lines.push('', `## Sessions that stopped answering (${staleSessions.length})`, '');
  if (staleSessions.length === 0) lines.push('None.');
  for (const s of staleSessions) lines.push(`- session \`${s.id}\` (pid ${s.pid} on ${s.host}) is ${s.status}; last heartbeat ${iso(s.lastHeartbeatAt)}`);
  return `${lines.join('\n')}\n`;
}
