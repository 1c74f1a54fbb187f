/**
 * Names what is wrong with a directory cairn must create or tighten, instead of the raw
 * `EEXIST: … mkdir` / `EPERM: … chmod` Node gives: a file in the way, or a directory (or the parent it
 * would be made in) that belongs to someone else.
 */
import { statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { StoreError, toError } from '../errors.js';

/** The nearest of `dir` and its parents that exists, with its stat; null if none can be read. */
function nearestExisting(dir: string): { at: string; stat: Stats } | null {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    try {
      return { at, stat: statSync(at) };
    } catch {
      if (at === path.dirname(at)) return null;
    }
  }
}

/** A StoreError (exit 1) saying why `what` (e.g. "the data directory") at `dir` could not be made private; runs a few stat calls. */
export function directoryError(what: string, dir: string, e: unknown): StoreError {
  const code = (e as { code?: string }).code;
  const cause = { cause: e };
  const found = nearestExisting(dir);
  if ((code === 'EEXIST' || code === 'ENOTDIR') && found && !found.stat.isDirectory()) {
    const where = found.at === path.resolve(dir) ? '' : ` (${found.at} is a file)`;
    return new StoreError(`${what} ${dir} is a file${where}; move it aside, or point --data-dir (or dataDir in the config) at a directory`, cause);
  }
  if ((code === 'EACCES' || code === 'EPERM') && found) {
    const owner = found.at === path.resolve(dir) ? 'it belongs' : `${found.at} belongs`;
    return new StoreError(
      `cannot write ${what} ${dir}: permission denied (${owner} to uid ${found.stat.uid}; run as that user or chown it)`,
      cause,
    );
  }
  return new StoreError(`cannot use ${what} ${dir}: ${toError(e).message}`, cause);
}
