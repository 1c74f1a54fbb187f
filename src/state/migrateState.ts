/**
 * `cairn state migrate`: copies every namespace, with its keys, their timestamps and its checkpoints,
 * from one backend to another, then reads each namespace back from the target to check that nothing
 * was lost. The source is left as it was.
 */
import { isDeepStrictEqual } from 'node:util';
import { CairnError, StateBackendError } from '../errors.js';
import type { OnProgress } from '../progressUpdate.js';
import { parseStateTime, type NamespaceDump, type StateBackend } from './stateBackend.js';

export interface MigratedNamespace {
  ns: string;
  keys: number;
  checkpoints: number;
}

export interface StateMigrationReport {
  namespaces: MigratedNamespace[];
  keys: number;
  checkpoints: number;
  /** Namespaces that existed in the target and were replaced (only with `replace`). */
  replaced: string[];
}

/**
 * Two dumps hold the same state. Checkpoints are compared by name, whatever order a backend lists them
 * in, and their times as instants: the JSON backend keeps a checkpoint's time as the file's mtime, so
 * a zone-less legacy time comes back written with its zone.
 */
function isSameDump(a: NamespaceDump, b: NamespaceDump): boolean {
  const byName = (d: NamespaceDump) =>
    [...d.checkpoints].sort((x, y) => (x.name < y.name ? -1 : 1)).map((c) => ({ ...c, at: instantOf(c.at) }));
  return isDeepStrictEqual(a.entries, b.entries) && isDeepStrictEqual(byName(a), byName(b));
}

function instantOf(at: string): number | string {
  const ms = parseStateTime(at);
  return Number.isNaN(ms) ? at : ms;
}

/**
 * Copies all of `source` into `target`. A namespace that already holds state in the target is refused
 * unless `replace`, which overwrites it whole. `onProgress` hears each namespace copied and checked.
 * Writes to the target only.
 */
export async function migrateState(
  source: StateBackend,
  target: StateBackend,
  options: { replace?: boolean; onProgress?: OnProgress } = {},
): Promise<StateMigrationReport> {
  const names = await source.namespaces();
  const existing = new Set(await target.namespaces());
  const clashes = names.filter((ns) => existing.has(ns));
  if (clashes.length && !options.replace) {
    throw new CairnError(
      `${target.location} already holds namespace${clashes.length > 1 ? 's' : ''} ${clashes.join(', ')}; ` +
        'nothing was copied. Pass --replace to overwrite them with the source, or migrate to an empty target.',
    );
  }
  const report: StateMigrationReport = { namespaces: [], keys: 0, checkpoints: 0, replaced: clashes };
  for (const ns of names) {
    const dump = await source.exportNamespace(ns);
    await target.importNamespace(dump);
    const copied = await target.exportNamespace(ns);
    if (!isSameDump(dump, copied)) {
      throw new StateBackendError(
        `namespace ${ns} did not arrive intact in ${target.location} (it reads back differently); the source is untouched, so fix the target and run the migration again with --replace`,
      );
    }
    report.namespaces.push({ ns, keys: dump.entries.length, checkpoints: dump.checkpoints.length });
    report.keys += dump.entries.length;
    report.checkpoints += dump.checkpoints.length;
    options.onProgress?.({ step: 'copying', done: report.namespaces.length, total: names.length, unit: 'namespaces' });
  }
  return report;
}
