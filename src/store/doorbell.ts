/**
 * The SQLite store's doorbell: a CLI write rings it right after its commit, and a daemon watching it
 * (fs.watch, inotify on Linux) looks at the store at once instead of at its next safety poll.
 *
 * Why a file and not a Unix socket: ringing a file is one open and one one-byte write that never
 * depends on the daemon. A daemon frozen with SIGSTOP, killed with -9, or never started cannot make
 * the writer wait or fail (a socket's connect and write can fill a stopped peer's backlog, and a killed
 * daemon leaves a socket file the next start must clean up, racing a second daemon). Any number of
 * daemons can watch one file; a socket path is one listener and is capped at ~108 bytes, which a deep
 * data directory exceeds. The daemon never reads the file: whatever a stranger writes to it (wrong
 * bytes, 1 MiB, a thousand writes) only costs a look at the store, and a burst of rings folds into one.
 * Where inotify does not reach (a network file system) the safety poll still finds every change.
 */
import { closeSync, constants, fchmodSync, fstatSync, openSync, unlinkSync, watch, writeSync, type FSWatcher } from 'node:fs';

/** The doorbell of a database file: next to it, named after it, so every process using the file agrees. */
export function doorbellPath(databaseFile: string): string {
  return `${databaseFile}.wake`;
}

const RING = Buffer.from('1');

/**
 * Rings the doorbell, if a daemon ever created it. Never creates it, never throws, never blocks:
 * O_NONBLOCK so a fifo put in its place fails (ENXIO) instead of waiting for a reader; O_NOFOLLOW so
 * a symlink put in its place is not written through; the byte goes at offset 0, so the file never grows.
 */
export function ringDoorbell(file: string): void {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return; // no daemon has run here (ENOENT), or something else is in its place: the safety poll remains
  }
  try {
    if (fstatSync(fd).isFile()) writeSync(fd, RING, 0, 1, 0);
  } catch {
    // A full disk or the like: the commit is durable already, and the safety poll finds it.
  } finally {
    closeSync(fd);
  }
}

/** Creates the doorbell as a private regular file (0600), replacing whatever else is in its place. */
function createDoorbell(file: string): void {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  let fd: number;
  try {
    fd = openSync(file, flags, 0o600);
  } catch {
    unlinkSync(file); // a symlink (ELOOP) or a fifo nobody reads (ENXIO): not ours to keep
    fd = openSync(file, flags | constants.O_EXCL, 0o600);
  }
  try {
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      unlinkSync(file);
      fd = openSync(file, flags | constants.O_EXCL, 0o600);
    }
    fchmodSync(fd, 0o600); // an existing file keeps its mode on open: tighten it
  } finally {
    closeSync(fd);
  }
}

export interface DoorbellWatch {
  close(): void;
}

/**
 * Creates the doorbell (0600) and calls `onRing` whenever it is written to. If the file is removed or
 * replaced, the watch is made again on a fresh file (and `onRing` is called, in case a ring was lost).
 * `onError` hears a watch that failed; the caller's safety poll carries on regardless.
 */
export function watchDoorbell(file: string, onRing: () => void, onError: (e: unknown) => void): DoorbellWatch {
  let watcher: FSWatcher | null = null;
  let isClosed = false;
  const arm = () => {
    watcher?.close();
    watcher = null;
    if (isClosed) return;
    try {
      createDoorbell(file);
      watcher = watch(file, { persistent: false }, (eventType) => {
        if (eventType === 'rename') {
          arm(); // removed or replaced: the watch on the old inode would never fire again
          onRing();
        } else onRing();
      });
      watcher.on('error', (e) => {
        watcher?.close();
        watcher = null;
        onError(e);
      });
    } catch (e) {
      onError(e);
    }
  };
  arm();
  return {
    close() {
      isClosed = true;
      watcher?.close();
      watcher = null;
    },
  };
}
