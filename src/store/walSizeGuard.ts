/**
 * Keeps the -wal file bounded. SQLite's automatic checkpoint, like the daemon's background one
 * (walCheckpointer.ts), is PASSIVE: it copies what no reader still
 * needs but never resets the WAL while any reader is open, so readers that overlap back to back (CLI
 * verbs, views, a dashboard) let it grow for ever. After a commit that leaves the -wal over the
 * threshold, this runs a TRUNCATE checkpoint, which waits briefly for a gap between readers (new readers
 * then read the database file) and empties the -wal. If the readers leave no gap in time it gives up
 * and tries again after a pause, so a writer is never held for long.
 */
import type Database from 'better-sqlite3';
import { statSync } from 'node:fs';

/** Same as SQLite's auto-checkpoint threshold (1000 pages of 4 KiB). */
const THRESHOLD_BYTES = 4 * 1024 * 1024;
/**
 * With the background checkpointer running, the -wal starts over by itself unless readers starve it;
 * a burst of commits between two of its passes must not send the committing thread into a TRUNCATE.
 */
const THRESHOLD_WITH_BACKGROUND_BYTES = 16 * 1024 * 1024;
/** How long a checkpoint may wait for readers; writers of every process wait this long at most. */
const WAIT_FOR_READERS_MS = 250;
/**
 * After a failed attempt the next waits this long, doubling up to the maximum: readers that never leave
 * a gap (held open across awaits in the same process as the writer) cost one short wait per pause.
 */
const FIRST_PAUSE_MS = 500;
const MAX_PAUSE_MS = 4000;

export class WalSizeGuard {
  private readonly walFile: string;
  private nextAttemptAt = 0;
  private pauseMs = FIRST_PAUSE_MS;
  private threshold = THRESHOLD_BYTES;

  constructor(
    private readonly db: Database.Database,
    dbFile: string,
    private readonly busyTimeoutMs: number,
  ) {
    this.walFile = `${dbFile}-wal`;
  }

  /** The background checkpointer runs (or stopped): only a starved -wal needs this guard then. */
  backgroundCheckpoints(running: boolean): void {
    this.threshold = running ? THRESHOLD_WITH_BACKGROUND_BYTES : THRESHOLD_BYTES;
  }

  /** Call after a commit; cheap (one stat) unless the -wal is over the threshold. Never throws. */
  afterCommit(now = Date.now()): void {
    if (now < this.nextAttemptAt) return;
    let size: number;
    try {
      size = statSync(this.walFile).size;
    } catch {
      return; // no -wal (not WAL mode, or just truncated)
    }
    if (size < this.threshold) return;
    let done = false;
    try {
      this.db.pragma(`busy_timeout = ${WAIT_FOR_READERS_MS}`);
      const [row] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
      done = row?.busy === 0;
    } catch {
      // SQLITE_BUSY: another process is checkpointing or holds the write lock; treated as a failed attempt.
    } finally {
      this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
    }
    if (done) {
      this.pauseMs = FIRST_PAUSE_MS;
    } else {
      this.nextAttemptAt = now + this.pauseMs;
      this.pauseMs = Math.min(this.pauseMs * 2, MAX_PAUSE_MS);
    }
  }
}
