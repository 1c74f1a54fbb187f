/**
 * An exclusive lock file, so two processes doing read-modify-write on the same JSON files cannot lose
 * each other's updates. The lock is a file created with O_EXCL (`wx`) holding its owner's pid, host
 * and a random token. A lock whose owner died (same host, pid gone) or, from another host, that is
 * older than a minute is stale and broken; breaking happens under a second `.break` lock so two
 * waiters that both saw the same stale lock cannot each delete a fresh one.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { isPidAlive, thisHost } from '../process/sessions.js';
import { StateBackendError, toError } from '../errors.js';

const FOREIGN_STALE_MS = 60_000;
/** An empty or half-written lock file (its writer died between create and write) counts as stale after this. */
const UNREADABLE_STALE_MS = 10_000;
/** The breaker lock is held for microseconds; one this old was left by a process that died holding it. */
const BREAKER_STALE_MS = 5_000;
/** A lock with our pid but older than this process was left by an earlier process that had our pid. */
const PROCESS_STARTED_AT_MS = Date.now() - process.uptime() * 1000;

export interface FileLockOptions {
  /** Give up waiting after this long (default 10 s). */
  timeoutMs?: number;
}

interface LockOwner {
  pid: number;
  host: string;
  at: number;
  token: string;
}

function readOwner(lockFile: string): { text: string; owner: LockOwner | null; ageMs: number } | null {
  try {
    const text = readFileSync(lockFile, 'utf8');
    const ageMs = Date.now() - statSync(lockFile).mtimeMs;
    try {
      const owner = JSON.parse(text) as LockOwner;
      return { text, owner: typeof owner?.pid === 'number' ? owner : null, ageMs };
    } catch {
      return { text, owner: null, ageMs };
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function isStale(seen: { owner: LockOwner | null; ageMs: number }): boolean {
  const { owner, ageMs } = seen;
  if (!owner) return ageMs > UNREADABLE_STALE_MS;
  if (owner.host === thisHost) return owner.pid === process.pid ? owner.at < PROCESS_STARTED_AT_MS : !isPidAlive(owner.pid);
  return ageMs > FOREIGN_STALE_MS;
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Removes `lockFile` if it still holds exactly `staleText`, under the breaker lock. Deletes files. */
function breakStaleLock(lockFile: string, staleText: string): void {
  const breaker = `${lockFile}.break`;
  let fd: number;
  try {
    fd = openSync(breaker, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    try {
      if (Date.now() - statSync(breaker).mtimeMs > BREAKER_STALE_MS) unlinkQuietly(breaker);
    } catch {
      // gone meanwhile: fine
    }
    return;
  }
  closeSync(fd);
  try {
    const now = readOwner(lockFile);
    if (now && now.text === staleText) unlinkQuietly(lockFile);
  } finally {
    unlinkQuietly(breaker);
  }
}

function describeHolder(lockFile: string): string {
  const seen = readOwner(lockFile);
  if (!seen?.owner) return `${lockFile} exists`;
  const { pid, host, at } = seen.owner;
  return `pid ${pid} on ${host} has held ${lockFile} since ${new Date(at).toISOString()}`;
}

/**
 * Runs `fn` while holding the lock file, waiting (with short random sleeps) up to the timeout for
 * another holder to finish. Creates and deletes the lock file; throws StateBackendError on timeout.
 */
export async function withFileLock<T>(lockFile: string, fn: () => Promise<T> | T, options: FileLockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  const owner: LockOwner = { pid: process.pid, host: thisHost, at: Date.now(), token: randomUUID() };
  const text = JSON.stringify(owner);
  for (;;) {
    let fd: number | null = null;
    try {
      fd = openSync(lockFile, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StateBackendError(`cannot create the lock file ${lockFile}: ${toError(e).message}; check the directory's owner and permissions`, { cause: e });
      }
    }
    if (fd !== null) {
      try {
        writeSync(fd, text);
      } finally {
        closeSync(fd);
      }
      break;
    }
    const seen = readOwner(lockFile);
    if (seen && isStale(seen)) {
      breakStaleLock(lockFile, seen.text);
      continue;
    }
    if (Date.now() > deadline) {
      throw new StateBackendError(
        `gave up after ${timeoutMs} ms waiting for a lock: ${describeHolder(lockFile)}. ` +
          `If that process is gone or hung, stop it or delete ${lockFile}, then try again.`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 8));
  }
  try {
    return await fn();
  } finally {
    // Delete only our own lock: if it was (wrongly) broken as stale, the file is someone else's now.
    const now = readOwner(lockFile);
    if (now?.text === text) unlinkQuietly(lockFile);
  }
}
