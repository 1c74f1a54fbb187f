/**
 * Replaces a file so that readers see either the old or the new content, never a torn one: write a
 * temporary file in the same directory (rename is atomic only within a file system), then rename it
 * over the target. With `fsync` (the default) the new content also survives a power cut: the temporary
 * file is fsynced before the rename and the directory after it, so the rename itself is on disk.
 * Files that are caches (the views, the config cache) pass `fsync: false`: after a power cut they are
 * rebuilt, and two fsyncs per view would cost more than writing it.
 *
 * The one writer for the key-value JSON backend, the views and the config cache; it sits at the
 * bottom of src/ so any of them can use it. It does not load node:crypto (the config cache is written
 * on a read verb's start, where that costs about 2 ms): the temporary name is the pid, a counter and a
 * random part, created exclusively.
 */
import { closeSync, fchmodSync, fsyncSync, futimesSync, openSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface WriteFileAtomicOptions {
  /** fsync the file and then its directory (default true); false for files rebuilt from elsewhere. */
  fsync?: boolean;
  /** The file's modification time, in ms since the epoch (default: now). */
  mtimeMs?: number;
}

let written = 0;

/**
 * Writes `text` to `file` atomically with mode 0600 whatever the umask or the mode of the file it
 * replaces. On failure the temporary file is removed and the error thrown; the target is untouched.
 * Writes files.
 */
export function writeFileAtomic(file: string, text: string, options: WriteFileAtomicOptions = {}): void {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${++written}${Math.random().toString(36).slice(2, 8)}.tmp`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    try {
      fchmodSync(fd, 0o600); // the umask may have taken bits from the mode openSync asked for
      writeFileSync(fd, text); // on a descriptor, writes until every byte is out
      if (options.mtimeMs !== undefined) {
        const when = new Date(options.mtimeMs);
        futimesSync(fd, when, when);
      }
      if (options.fsync !== false) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  } catch (e) {
    try {
      unlinkSync(temp);
    } catch {
      // already renamed
    }
    throw e;
  }
  if (options.fsync !== false) syncDir(dir);
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
