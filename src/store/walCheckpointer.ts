/**
 * Moves SQLite's WAL checkpoints off the committing thread. By default the connection that commits
 * the 1,000th WAL page copies the whole WAL into the database (and syncs it) inside that commit, so
 * one transition in a few hundred waited milliseconds. The daemon turns that off on its connection and
 * lets a worker thread with its own connection run PASSIVE checkpoints: they never block a writer,
 * and the next writer after a complete checkpoint starts the WAL from its beginning again.
 */
import { createRequire } from 'node:module';
import type { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

const require = createRequire(import.meta.url);

/** How often the worker looks for WAL frames to copy when the last look found none / found some. */
const IDLE_INTERVAL_MS = 200;
const BUSY_INTERVAL_MS = 20;
/** SQLite's own default: what the committing connection goes back to if the worker is gone. */
const AUTOCHECKPOINT_PAGES = 1000;

// Plain CommonJS evaluated in the worker, so it runs the same from dist/ and from the TypeScript sources.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { timeout: 5000 });
db.pragma('synchronous = ' + workerData.synchronous);
let timer = null;
function checkpoint() {
  let copied = 0;
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    copied = result.checkpointed;
  } catch (e) {
    // SQLITE_BUSY: another checkpoint runs (a CLI's, or a snapshot's); try again on the next round.
    if (e.code !== 'SQLITE_BUSY') { parentPort.postMessage({ error: String(e.message) }); return; }
  }
  timer = setTimeout(checkpoint, copied > 0 ? workerData.busyMs : workerData.idleMs);
}
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearTimeout(timer);
  db.close();
  parentPort.close();
});
checkpoint();
`;

export class WalCheckpointer {
  private readonly worker: Worker;
  private exited: Promise<void>;
  private isStopping = false;
  private hasFallenBack = false;

  /** Starts checkpointing `file` in the background and turns off `db`'s own automatic checkpoints. */
  constructor(
    private readonly db: Database.Database,
    file: string,
    synchronous: 'FULL' | 'NORMAL',
    onError: (message: string) => void = () => {},
  ) {
    const driver = require.resolve('better-sqlite3');
    // Loaded here: only a daemon checkpoints in the background, and a read verb need not load it.
    const { Worker } = require('node:worker_threads') as typeof import('node:worker_threads');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver, file, synchronous, idleMs: IDLE_INTERVAL_MS, busyMs: BUSY_INTERVAL_MS },
    });
    // A background helper must not keep a finished program alive.
    this.worker.unref();
    this.worker.on('message', (m: { error?: string }) => {
      if (m.error) this.fallBack(`background WAL checkpoints stopped: ${m.error}`, onError);
    });
    this.worker.on('error', (e) => this.fallBack(`background WAL checkpoints stopped: ${e.message}`, onError));
    // A thread that ends without an error (terminated, out of memory) leaves nobody checkpointing either.
    this.worker.on('exit', (code) => {
      if (!this.isStopping) this.fallBack(`background WAL checkpoints stopped: their thread exited (code ${code})`, onError);
    });
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    db.pragma('wal_autocheckpoint = 0');
  }

  /** The committing connection checkpoints for itself again, as SQLite does by default. */
  private fallBack(message: string, onError: (message: string) => void): void {
    if (this.hasFallenBack) return; // an error is followed by the thread's exit: say it once
    this.hasFallenBack = true;
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    onError(message);
  }

  async stop(): Promise<void> {
    this.isStopping = true;
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    // Waited for, so it must hold the event loop open until it has closed its connection.
    this.worker.ref();
    this.worker.postMessage('stop');
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 2000).unref());
    if ((await Promise.race([this.exited, timeout])) === 'timeout') await this.worker.terminate();
  }
}
