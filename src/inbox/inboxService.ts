/**
 * The inbox: files dropped into `inbox.dir` become tasks. chokidar reports a file once its size has
 * been stable for a moment (so a half-written file is not read), including files already there at
 * start. Each file is taken in at most once: its content hash is recorded in the same transaction as
 * its tasks, so a crash between the insert and the move re-finds the tasks instead of creating them
 * again. Then the file moves to accepted/ (its name carries the task ids) or rejected/ (beside a
 * <name>.error.txt saying why). Nothing dropped can stop the daemon.
 */
import chokidar, { type FSWatcher } from 'chokidar';
import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, fstatSync, lstatSync, openSync, readSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DaemonService, ServiceHost } from '../daemonService.js';
import { crashPoint } from '../process/crashPoints.js';
import { InboxFileError, toError } from '../errors.js';
import { ensurePrivateDir } from '../store/sqlite.js';
import { parseInboxFile } from './parseInboxFile.js';

/** Larger files are refused unread: an inbox file is a task description, not a data set. */
export const MAX_INBOX_FILE_BYTES = 1024 * 1024;
/** How long a file's size must stay the same before it is read. */
const STABLE_MS = 250;
/**
 * A writer may pause longer than STABLE_MS mid-file (a slow copy, a loaded machine): a file that does
 * not parse but was written this recently is read again later rather than rejected half-written.
 */
const QUIET_BEFORE_REJECT_MS = 3000;

/** Editors and careful writers use these while a file is incomplete; they are renamed when done. */
function isTemporaryName(name: string): boolean {
  return name.startsWith('.') || /(\.tmp|\.part|\.swp|~)$/i.test(name);
}

/**
 * `inbox.dir` is relative to the config file, as every other path in it is (stage programs, state.dir,
 * store.path, and what `cairn service` opens to the sandbox); without it, `<dataDir>/inbox`. Pure.
 */
export function inboxDir(config: { dataDir: string; baseDir: string; inbox: { dir?: string } }): string {
  return config.inbox.dir ? path.resolve(config.baseDir, config.inbox.dir) : path.join(config.dataDir, 'inbox');
}

/** Reads a regular file without following a symlink or blocking on a FIFO; refuses what is too big. */
function readInboxFile(file: string): Buffer {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new InboxFileError('it is a symbolic link; the inbox reads only regular files');
    throw e;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new InboxFileError('it is not a regular file (a FIFO, socket or device); the inbox reads only regular files');
    if (stat.size > MAX_INBOX_FILE_BYTES) {
      throw new InboxFileError(`it is ${stat.size} bytes; inbox files are at most ${MAX_INBOX_FILE_BYTES} bytes`);
    }
    const buffer = Buffer.alloc(stat.size);
    let read = 0;
    while (read < stat.size) {
      const n = readSync(fd, buffer, read, stat.size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

/** A destination name that does not overwrite anything already there. */
function freeName(dir: string, name: string): string {
  if (!existsSync(path.join(dir, name))) return path.join(dir, name);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  for (let i = 1; ; i++) {
    const candidate = path.join(dir, `${stamp}-${i}-${name}`);
    if (!existsSync(candidate)) return candidate;
  }
}

export class InboxService implements DaemonService {
  readonly name = 'inbox';
  private watcher: FSWatcher | null = null;
  private queue: Promise<void> = Promise.resolve();
  private readonly retries = new Set<NodeJS.Timeout>();
  private daemon: ServiceHost | null = null;
  private dir = '';

  async start(daemon: ServiceHost): Promise<void> {
    this.daemon = daemon;
    this.dir = inboxDir(daemon.config);
    for (const d of [this.dir, path.join(this.dir, 'accepted'), path.join(this.dir, 'rejected')]) ensurePrivateDir(d);
    this.watcher = chokidar.watch(this.dir, {
      depth: 0,
      ignoreInitial: false,
      followSymlinks: false,
      awaitWriteFinish: { stabilityThreshold: STABLE_MS, pollInterval: 50 },
      ignored: (file: string) => {
        const relative = path.relative(this.dir, file);
        return relative !== '' && (relative.includes(path.sep) || relative === 'accepted' || relative === 'rejected' || isTemporaryName(relative));
      },
    });
    this.watcher.on('add', (file) => this.enqueue(file));
    this.watcher.on('error', (e) => daemon.logger.error({ err: toError(e) }, `the inbox watcher reported: ${toError(e).message}`));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    daemon.logger.info({ inbox: this.dir }, `watching the inbox ${this.dir}`);
  }

  private enqueue(file: string): void {
    // One file at a time: takes in are quick, and order is easier to reason about.
    this.queue = this.queue.then(() => this.takeIn(file)).catch((e) => {
      this.daemon?.logger.error({ file, err: toError(e) }, `inbox file ${file} could not be handled: ${toError(e).message}; it stays where it is`);
    });
  }

  /** Handles one file: tasks created at most once, then the file moved. Writes the store and the file system. */
  async takeIn(file: string): Promise<void> {
    const daemon = this.daemon!;
    const name = path.basename(file);
    if (!existsSync(file) && !isSymlink(file)) return; // moved or deleted meanwhile
    let requests;
    let hash: string;
    try {
      const content = readInboxFile(file);
      hash = createHash('sha256').update(content).digest('hex');
      requests = parseInboxFile(name, content.toString('utf8'));
    } catch (e) {
      if (e instanceof InboxFileError) {
        if (this.isStillBeingWritten(file)) return this.retryLater(file);
        return this.reject(file, e.message);
      }
      throw e;
    }
    let result;
    try {
      result = await daemon.engine.submitOnce({ source: 'inbox', key: hash }, requests, 'inbox');
    } catch (e) {
      // The file is valid as a file but its tasks cannot exist (a dependency that does not exist, …).
      if (toError(e).name === 'StoreError' || toError(e).name === 'UsageError' || toError(e).name === 'TaskNotFoundError') {
        return this.reject(file, toError(e).message);
      }
      throw e;
    }
    crashPoint('after-inbox-insert');
    const ids = result.tasks.map((t) => t.id);
    const target = freeName(path.join(this.dir, 'accepted'), `${name.replace(/(\.[^.]+)$/, '')}.task-${ids.join('-')}${path.extname(name)}`);
    renameSync(file, target);
    daemon.logger.info(
      { file: name, tasks: ids, isNew: result.isNew },
      result.isNew
        ? `inbox: ${name} became task(s) ${ids.join(', ')}`
        : `inbox: ${name} was taken in before (tasks ${ids.join(', ')}); moved it to accepted/ without creating anything`,
    );
    daemon.requestTick();
  }

  private isStillBeingWritten(file: string): boolean {
    try {
      const st = lstatSync(file);
      return st.isFile() && Date.now() - st.mtimeMs < QUIET_BEFORE_REJECT_MS;
    } catch {
      return false;
    }
  }

  private retryLater(file: string): void {
    const timer = setTimeout(() => {
      this.retries.delete(timer);
      this.enqueue(file);
    }, QUIET_BEFORE_REJECT_MS / 3);
    this.retries.add(timer);
  }

  private reject(file: string, reason: string): void {
    const name = path.basename(file);
    const target = freeName(path.join(this.dir, 'rejected'), name);
    renameSync(file, target);
    writeFileSync(`${target}.error.txt`, `${file}\n${reason}\n`, { mode: 0o600 });
    this.daemon!.logger.warn({ file: name, reason }, `inbox: rejected ${name}: ${reason} (see ${path.relative(this.dir, target)}.error.txt)`);
  }

  async stop(): Promise<void> {
    for (const timer of this.retries) clearTimeout(timer);
    await this.watcher?.close();
    await this.queue;
  }
}

function isSymlink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}
