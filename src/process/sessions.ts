/** Which daemon sessions are still alive. Liveness is data (heartbeats), plus a pid check on this host. */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { SessionRecord, Store } from '../store/store.js';

/** Whether a process exists and is not a zombie (an exited child nobody reaped still answers kill 0). */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; the state letter follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (not Linux): kill 0 said it exists
  }
}

/**
 * The machine a session runs on. CAIRN_HOST overrides it where hostnames do not tell machines apart
 * (containers sharing one name): a pid is only checked for sessions of the same host.
 */
export const thisHost = process.env.CAIRN_HOST?.trim() || hostname();

/** A session is gone when it ended, when its process on this host is dead, or when its heartbeat is stale. */
export function isSessionGone(session: SessionRecord, now: number, staleAfterMs: number): boolean {
  if (session.status !== 'active') return true;
  if (session.host === thisHost && session.pid !== process.pid && !isPidAlive(session.pid)) return true;
  return now - session.lastHeartbeatAt > staleAfterMs;
}

/**
 * Marks active sessions whose process is dead (`crashed`) or silent past staleAfter (`stale`), so their
 * leases stop counting. Writes session rows; returns the ones it marked.
 */
export async function markGoneSessions(store: Store, now: number, staleAfterMs: number, selfId?: string): Promise<SessionRecord[]> {
  const marked: SessionRecord[] = [];
  for (const session of await store.listSessions({ status: 'active' })) {
    if (session.id === selfId) continue;
    const isDeadHere = session.host === thisHost && !isPidAlive(session.pid);
    const isSilent = now - session.lastHeartbeatAt > staleAfterMs;
    if (!isDeadHere && !isSilent) continue;
    const status = isDeadHere ? 'crashed' : 'stale';
    await store.endSession(session.id, status, now);
    marked.push({ ...session, status });
  }
  return marked;
}
