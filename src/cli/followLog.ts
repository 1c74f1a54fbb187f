/**
 * `cairn logs ID --follow`: prints a stage run's log as it grows and ends when the run ends.
 *
 * The end comes from the store, not from the file: the daemon running the stage is usually another
 * process (and with PostgreSQL maybe another host's database client), and a log file never says it is
 * complete. The executor closes the log before the run's result is recorded, so once the store says the
 * run ended, one last read gets the whole file.
 *
 * Growth is seen with fs.watch on the file plus a poll every POLL_MS that reads whatever is new anyway.
 * Not chokidar: its value is recursive directories, atomic-save renames and editor quirks, none of which
 * a single append-only file has, and it would cost this verb start-up time. fs.watch alone is not enough
 * either: it is silent on network filesystems (NFS, SMB) and some container mounts, and it cannot watch
 * a file that does not exist yet (a run that has been claimed but not yet spawned). The poll, which has to
 * ask the store whether the run ended anyway, covers both, so a missed event costs at most POLL_MS.
 */
import { closeSync, fstatSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import type { Config } from '../config.js';
import { isSessionGone } from '../process/sessions.js';
import type { StageRunRecord, Store } from '../store/store.js';

/** How often the store is asked whether the run ended, and the file read for what fs.watch missed. */
const POLL_MS = 500;
const CHUNK_BYTES = 64 * 1024;

/** How the followed run ended: with a recorded result, or with its daemon gone (left to be resumed). */
type RunEnd = { kind: 'recorded'; run: StageRunRecord } | { kind: 'daemon_gone'; sessionId: string };

/**
 * Prints `file` to stdout from its start and as it grows, until the store records `run` as ended or its
 * daemon's session is gone; then prints the rest and a line on stderr saying how the run ended.
 */
export async function followRun(ctx: { config: Config; store: Store; run: StageRunRecord; file: string }): Promise<void> {
  const { config, store, run } = ctx;
  const what = `task ${run.taskId}'s ${run.stage} attempt ${run.attempt}`;
  const end = await followFile(ctx.file, () => runEnd(store, config, run));
  if (end === 'reader_gone') return;
  if (end.kind === 'recorded') {
    const r = end.run;
    const detail = r.exitCode !== null ? ` (exit ${r.exitCode})` : r.signal ? ` (${r.signal})` : '';
    process.stderr.write(`cairn: ${what} ended: ${r.outcome}${detail}\n`);
  } else {
    process.stderr.write(
      `cairn: ${what} stopped without a result: session ${end.sessionId}, the daemon running it, is gone; the next \`cairn start\` resumes it as a new attempt\n`,
    );
  }
}

/** Whether the run has ended, as the store has it. Reads the store. */
async function runEnd(store: Store, config: Config, run: StageRunRecord): Promise<RunEnd | null> {
  const current = (await store.getStageRuns(run.taskId)).find((r) => r.stage === run.stage && r.attempt === run.attempt);
  // Gone from the store (a rewind or retention removed it): nothing more will be written to its log.
  if (!current) return { kind: 'recorded', run: { ...run, outcome: 'superseded' } };
  if (current.outcome !== null) return { kind: 'recorded', run: current };
  // A daemon that stopped or died leaves the run open until a resume closes it; following it on until
  // then would wait on a log nobody writes.
  const session = (await store.listSessions({ status: 'active' })).find((s) => s.id === current.sessionId);
  if (!session || isSessionGone(session, Date.now(), config.heartbeat.staleAfter)) return { kind: 'daemon_gone', sessionId: current.sessionId };
  return null;
}

/** Resolves when stdout can take more, or when it failed (its reader went away). */
function drained(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.stdout.off('drain', done);
      process.stdout.off('error', done);
      resolve();
    };
    process.stdout.once('drain', done);
    process.stdout.once('error', done);
  });
}

/**
 * Copies `file` to stdout as it grows until `isOver` returns a value, then copies the rest and returns
 * that value; 'reader_gone' when stdout's reader went away (`| head`).
 */
async function followFile<T>(file: string, isOver: () => Promise<T | null>): Promise<T | 'reader_gone'> {
  let fd: number | null = null;
  let offset = 0;
  let watcher: FSWatcher | null = null;
  let isReaderGone = false;
  const onStdoutError = () => {
    isReaderGone = true; // EPIPE: nobody reads any more
  };
  process.stdout.on('error', onStdoutError);

  /** Writes what the file has past `offset`. A watch event and a poll tick may both call it: `copying` keeps them in turn. */
  let copying: Promise<void> = Promise.resolve();
  const copyNew = () => (copying = copying.then(copyOnce));
  const copyOnce = async () => {
    if (fd === null) {
      try {
        fd = openSync(file, 'r');
      } catch {
        return; // not created yet
      }
    }
    const size = fstatSync(fd).size;
    if (size < offset) offset = 0; // truncated by hand: start again from the top
    while (offset < size && !isReaderGone) {
      const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, size - offset));
      const n = readSync(fd, buffer, 0, buffer.length, offset);
      if (n === 0) break;
      offset += n;
      if (!process.stdout.write(buffer.subarray(0, n))) await drained();
    }
  };
  const watchFile = () => {
    if (watcher) return;
    try {
      // A failed copy is seen again, and thrown, by the loop's own copyNew.
      watcher = watch(file, { persistent: false }, () => void copyNew().catch(() => undefined));
      watcher.on('error', () => {
        watcher?.close();
        watcher = null; // the poll carries on alone, and tries to watch again on its next tick
      });
    } catch {
      // ENOENT until the executor creates the file; the poll tries again.
    }
  };

  try {
    for (;;) {
      // Asked before reading: a run the store calls ended has its log closed, so this read is the last.
      const over = await isOver();
      watchFile();
      await copyNew();
      if (isReaderGone) return 'reader_gone';
      if (over !== null) return over;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    (watcher as FSWatcher | null)?.close(); // set in watchFile, which TypeScript's narrowing does not follow
    await copying.catch(() => undefined);
    if (fd !== null) closeSync(fd);
    process.stdout.off('error', onStdoutError);
  }
}
