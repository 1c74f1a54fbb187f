/**
 * What `cairn status` names for a person to act on, task by task: approvals waiting (oldest first, with
 * how long), failed tasks (newest first, with their error) and stages stuck past their timeout (longest
 * over first). Unlike the heartbeat's flags (healthFlags.ts), which fire only past a reminder time, these
 * list everything that waits on someone now. Reads the store; writes nothing.
 */
import type { Config } from '../config.js';
import type { Store } from '../store/store.js';
import { findStuckRuns } from './healthFlags.js';
import { iso } from '../taskJson.js';

/** Each list in `status --json` holds at most this many; `total` says how many there are. */
export const ATTENTION_JSON_MAX = 100;

export async function findNeedsAttention(store: Store, config: Config, now: number) {
  const waiting = (await store.listTasks({ status: 'awaiting_approval' })).sort((a, b) => a.updatedAt - b.updatedAt || a.id - b.id);
  const failed = (await store.listTasks({ status: 'failed' })).sort((a, b) => b.updatedAt - a.updatedAt || b.id - a.id);
  const stuck = await findStuckRuns(store, config, now);
  return {
    waiting_approval: {
      total: waiting.length,
      // A task's row changes only on a transition, so updatedAt is when it reached the gate.
      tasks: waiting.slice(0, ATTENTION_JSON_MAX).map((t) => ({
        id: t.id,
        gate: t.state === 'plan_awaiting_approval' ? 'plan' : 'implementation',
        state: t.state,
        since: iso(t.updatedAt),
        waited_ms: Math.max(0, now - t.updatedAt),
      })),
    },
    failed: {
      total: failed.length,
      tasks: failed.slice(0, ATTENTION_JSON_MAX).map((t) => {
        const error = t.snapshot.context.error;
        return { id: t.id, stage: error?.stage ?? null, attempt: error?.attempt ?? null, error: error?.message ?? null, failed_at: iso(t.updatedAt) };
      }),
    },
    stuck: {
      total: stuck.length,
      stages: stuck.slice(0, ATTENTION_JSON_MAX).map((s) => ({
        task: s.run.taskId,
        stage: s.run.stage,
        attempt: s.run.attempt,
        session: s.session,
        started_at: iso(s.run.startedAt),
        running_ms: s.ranMs,
        timeout_ms: s.timeoutMs,
        past_timeout_ms: s.ranMs - s.timeoutMs,
      })),
    },
  };
}

export type NeedsAttention = Awaited<ReturnType<typeof findNeedsAttention>>;

/** `3h 10m`, `20m`, `45s`, `2d 4h`: a wait as a person reads it, rounded down. Pure. */
export function formatWait(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${m % 60 ? ` ${m % 60}m` : ''}`;
  return `${Math.floor(h / 24)}d${h % 24 ? ` ${h % 24}h` : ''}`;
}

/** How many of each list the text output names before "… and N more". */
const TEXT_MAX = 10;

function capped<T>(items: T[], total: number, show: (item: T) => string): string {
  const shown = items.slice(0, TEXT_MAX).map(show).join(', ');
  return total > TEXT_MAX ? `${shown} … and ${total - TEXT_MAX} more` : shown;
}

/** One line on one row: an error message may span several. */
function oneLine(text: string, width: number): string {
  const flat = Array.from(text.replace(/\s+/g, ' ').trim());
  return flat.length > width ? `${flat.slice(0, width - 1).join('')}…` : flat.join('');
}

/** The lines `cairn status` prints for what needs a person, each saying what to do; none when nothing waits. Pure. */
export function renderNeedsAttention(a: NeedsAttention): string[] {
  const lines: string[] = [];
  if (a.waiting_approval.total) {
    lines.push(
      `waiting for approval: ${capped(a.waiting_approval.tasks, a.waiting_approval.total, (t) => `${t.id} (${t.gate}, ${formatWait(t.waited_ms)})`)}` +
        '; `cairn show ID` to review, `cairn approve ID` or `cairn reject ID --reason …`',
    );
  }
  if (a.failed.total) {
    lines.push(
      `failed: ${capped(a.failed.tasks, a.failed.total, (t) => `${t.id} (${t.stage ? `${t.stage}: ` : ''}${oneLine(t.error ?? 'no error recorded', 60)})`)}` +
        '; `cairn show ID` says why, `cairn logs ID` shows its last log, `cairn retry ID` runs the failed stage again',
    );
  }
  if (a.stuck.total) {
    lines.push(
      `stuck: ${capped(a.stuck.stages, a.stuck.total, (s) => `${s.task} (${s.stage} attempt ${s.attempt}, ${formatWait(s.past_timeout_ms)} past its ${formatWait(s.timeout_ms)} timeout)`)}` +
        '; the daemon running it may be hung: `cairn logs ID` shows what it last printed; check that daemon, or `cairn cancel ID`',
    );
  }
  return lines;
}
