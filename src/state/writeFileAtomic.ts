/**
 * Replaces a file so that readers see either the old or the new content, never a torn one, and the
 * new content survives a power cut: write a temporary file in the same directory (rename is atomic
 * only within a file system), fsync it, rename it over the target, then fsync the directory so the
 * rename itself is on disk.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import path from 'node:path';

/** Writes `text` to `file` atomically with mode 0600; `mtimeMs` sets its modification time. Writes files. */
export function writeFileAtomic(file: string, text: string, options: { mtimeMs?: number } = {}): void {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (options.mtimeMs !== undefined) {
      const when = new Date(options.mtimeMs);
      utimesSync(temp, when, when);
    }
    renameSync(temp, file);
  } catch (e) {
    try {
      unlinkSync(temp);
    } catch {
      // already renamed or never created
    }
    throw e;
  }
  syncDir(dir);
}

/** fsyncs a directory so a rename or unlink in it is durable. Best effort where the OS refuses. */
export function syncDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // some file systems refuse fsync on a directory; the rename is still atomic
  } finally {
    closeSync(fd);
  }
}
