/**
 * `cairn status`: daemon sessions and their health, counts by status, and what needs a human: the
 * tasks waiting for approval, failed and stuck, by id (`attention`), and the heartbeat's flags.
 */
import { statSync } from 'node:fs';
import { stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { table } from './format.js';
import { iso } from '../taskJson.js';

export async function run(opts: { json?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  await withStore(global, async ({ config, store }) => {
    const { isSessionGone, markGoneSessions } = await import('../process/sessions.js');
    const now = Date.now();
    await markGoneSessions(store, now, config.heartbeat.staleAfter);
    const sessions = await store.listSessions();
    const live = sessions.filter((s) => !isSessionGone(s, now, config.heartbeat.staleAfter));
    const counts = await store.countByStatus();
    const resumable = await store.findResumable(now);
    const flags: { kind: string; task?: number; session?: string; message: string }[] = [];
    for (const t of resumable) {
      flags.push({ kind: 'resumable', task: t.id, message: `task ${t.id} was interrupted in ${t.runStage}; \`cairn start\` or \`cairn resume ${t.id}\` resumes it` });
    }
    // Stuck stages, approvals waiting, stale sessions, failing heartbeat parts, a failed restore drill.
    const health = await (await import('../daemon/healthStatus.js')).collectHealth(config, store, sessions, now);
    flags.push(...health.flags);
    const needsAttention = await import('../daemon/needsAttention.js');
    const attention = await needsAttention.findNeedsAttention(store, config, now);
    if (live.length === 0) flags.push({ kind: 'no_daemon', message: 'no daemon is running; start one with `cairn start`' });
    const latest = sessions[0] ?? null;
    const sizeBytes = store.kind === 'sqlite' ? safeSize(store.location) : null;
    const report = {
      session: live[0] ? sessionJson(live[0]) : latest ? sessionJson(latest) : null,
      sessions: live.map(sessionJson),
      counts,
      heartbeat: {
        last: iso(live[0]?.lastHeartbeatAt ?? latest?.lastHeartbeatAt),
        cron: config.heartbeat.cron,
        stale_after_ms: config.heartbeat.staleAfter,
        last_cycle: health.lastCycle,
      },
      snapshots: { cron: config.snapshots.cron, ...health.snapshots },
      stale_sessions: health.staleSessions,
      database: { kind: store.kind, location: store.location, size_bytes: sizeBytes },
      flags,
      attention,
    };
    if (opts.json) return io.out(JSON.stringify(report));
    const lines: string[] = [];
    if (live.length) {
      for (const s of live) lines.push(`daemon   running: session ${s.id}, pid ${s.pid} on ${s.host}, since ${iso(s.startedAt)}, last heartbeat ${iso(s.lastHeartbeatAt)}`);
    } else {
      lines.push(`daemon   not running${latest ? ` (last session ${latest.id} ${latest.status} at ${iso(latest.endedAt ?? latest.lastHeartbeatAt)})` : ''}`);
    }
    lines.push(`database ${store.location}${sizeBytes !== null ? ` (${(sizeBytes / 1024).toFixed(0)} KiB)` : ''}`);
    const countRows = Object.entries(counts);
    lines.push(`tasks    ${countRows.length ? countRows.map(([k, v]) => `${k} ${v}`).join(', ') : 'none'}`);
    lines.push(...needsAttention.renderNeedsAttention(attention));
    if (health.lastCycle) {
      const failed = health.lastCycle.failed_parts.map((p) => p.name);
      lines.push(`heartbeat last cycle ${health.lastCycle.at} (${health.lastCycle.ms} ms)${failed.length ? `: ${failed.join(', ')} FAILED` : ': ok'}`);
    }
    const snap = health.snapshots as { last: { name: string; created_at: string; size_bytes: number } | null; next: string | null; count: number; last_drill: { at: string; ok: boolean; snapshot: string } | null; note?: string };
    if (snap.note) lines.push(`snapshot ${snap.note}`);
    else {
      lines.push(
        `snapshot ${snap.last ? `last ${snap.last.name} at ${snap.last.created_at} (${(snap.last.size_bytes / 1024).toFixed(0)} KiB)` : 'none yet'}` +
          `${snap.next ? `, next at ${snap.next}` : ''}; ${snap.count} kept` +
          `; restore drill: ${snap.last_drill ? `${snap.last_drill.ok ? 'passed' : 'FAILED'} at ${snap.last_drill.at} (${snap.last_drill.snapshot || 'no snapshot'})` : 'not run yet'}`,
      );
    }
    // Stuck stages and waiting approvals are named above with what to do; listing them again as flags
    // would say each twice. --json keeps every flag.
    const otherFlags = flags.filter((f) => f.kind !== 'stuck' && f.kind !== 'approval_waiting');
    if (otherFlags.length) {
      lines.push('flags:');
      lines.push(table(otherFlags.map((f) => ['  ' + f.kind, f.message])));
    }
    io.out(lines.join('\n'));
  });
}

function sessionJson(s: import('../store/store.js').SessionRecord) {
  return { id: s.id, pid: s.pid, host: s.host, status: s.status, started_at: iso(s.startedAt), last_heartbeat_at: iso(s.lastHeartbeatAt), ended_at: iso(s.endedAt) };
}

function safeSize(file: string): number | null {
  try {
    return statSync(file).size;
  } catch {
    return null;
  }
}
