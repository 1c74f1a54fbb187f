/**
 * What `cairn status` adds from the heartbeat (DESIGN §5, §6): the last cycle and any part that keeps
 * failing, the last and next snapshot, the last restore drill, stale sessions, stuck tasks and
 * approvals waiting too long. Reads the store and the snapshot records; writes nothing.
 */
import type { Config } from '../config.js';
import { AUTOMATIC_KINDS, listSnapshots, type SnapshotRecord } from '../snapshots/catalog.js';
import { toError } from '../errors.js';
import { locationsOf, sqliteDbOf } from '../snapshots/locations.js';
import { lastDrill } from '../snapshots/restoreDrill.js';
import { nextSnapshotAt } from '../snapshots/snapshotSchedule.js';
import type { SessionRecord, Store } from '../store/store.js';
import { findStuckTasks, findWaitingApprovals, staleSessionFlags } from './healthFlags.js';
import { latestHeartbeat, unresolvedFailures, type HealthFlag } from './heartbeatLog.js';
import { iso } from '../taskJson.js';

/** A part failure older than this, with no cycle since, is history rather than news. */
const FAILURE_WINDOW_MS = 86_400_000;

/** A cron expression the daemon would refuse must not take `cairn status` down with it. */
function nextSnapshotOrNull(cron: string, lastAuto: SnapshotRecord | null, now: number): number | null {
  try {
    return nextSnapshotAt(cron, lastAuto, now);
  } catch {
    return null;
  }
}

export async function collectHealth(config: Config, store: Store, sessions: SessionRecord[], now: number) {
  const flags: HealthFlag[] = [
    ...(await findStuckTasks(store, config, now)),
    ...(await findWaitingApprovals(store, config, now)),
    ...staleSessionFlags(sessions, now),
  ];
  const db = sqliteDbOf(store);
  const last = db ? latestHeartbeat(db) : null;
  for (const failure of db ? unresolvedFailures(db, now - FAILURE_WINDOW_MS) : []) {
    flags.push({
      kind: 'heartbeat_failed',
      message: `the heartbeat's ${failure.part} part failed at ${iso(failure.at)}: ${failure.error}`,
    });
  }
  const drill = db ? lastDrill(db) : null;
  if (drill && !drill.ok) flags.push({ kind: 'drill_failed', message: `the restore drill at ${iso(drill.at)} failed: ${drill.message}` });

  let snapshots: Record<string, unknown>;
  const { snapshotsDir } = locationsOf(config);
  let all: SnapshotRecord[] = [];
  try {
    all = db ? listSnapshots(snapshotsDir) : [];
  } catch (e) {
    flags.push({ kind: 'snapshots_unreadable', message: `cannot read ${snapshotsDir}: ${toError(e).message}; snapshots cannot be taken or listed until it is fixed` });
  }
  if (db) {
    const newest = all[0] ?? null;
    const lastAuto = all.find((s) => AUTOMATIC_KINDS.includes(s.kind)) ?? null;
    snapshots = {
      last: newest ? { name: newest.name, kind: newest.kind, created_at: iso(newest.createdAt), size_bytes: newest.sizeBytes, tasks: newest.tasks } : null,
      next: iso(nextSnapshotOrNull(config.snapshots.cron, lastAuto, now)),
      count: all.length,
      dir: snapshotsDir,
      last_drill: drill ? { at: iso(drill.at), snapshot: drill.snapshot, ok: drill.ok, message: drill.message } : null,
      drill_every_ms: config.snapshots.drillEvery,
    };
  } else {
    snapshots = { last: null, next: null, count: 0, last_drill: null, note: 'snapshots are a SQLite feature; back PostgreSQL up with `cairn backup PATH` (pg_dump)' };
  }
  return {
    flags,
    lastCycle: last
      ? {
          at: iso(last.startedAt),
          ms: last.finishedAt - last.startedAt,
          ok: last.ok,
          session: last.sessionId,
          failed_parts: last.parts.filter((p) => !p.ok).map((p) => ({ name: p.name, error: p.error })),
        }
      : null,
    snapshots,
    staleSessions: sessions
      .filter((s) => s.status === 'stale')
      .slice(0, 10)
      .map((s) => ({ id: s.id, pid: s.pid, host: s.host, last_heartbeat_at: iso(s.lastHeartbeatAt), marked_at: iso(s.endedAt) })),
  };
}
