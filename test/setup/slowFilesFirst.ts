/**
 * vitest's sequencer: the longest files start first, so the two workers finish close together instead of
 * one starting a long file when the other is nearly done. vitest sorts by the last run's durations when
 * it has them (node_modules/.vite), but a fresh clone (CI) has none: the files named here lead, in this
 * order, and the rest follow in vitest's order.
 */
import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The longest files in a one-worker run on this 2-core machine (December 2026), longest first; a file
 * not named here keeps vitest's own order, after these. Only the order matters, not exact figures.
 */
const LONGEST_FIRST = [
  'chaos.quick.test.ts',
  'postgres.daemons.test.ts',
  'crashResume.test.ts',
  'snapshots.test.ts',
  'cliVerbs.test.ts',
  'heartbeat.test.ts',
  'daemonWorkflow.test.ts',
  'badInput.test.ts',
  'retention.test.ts',
  'import.test.ts',
  'migrateStore.test.ts',
  'archive.test.ts',
  'store.contract.test.ts',
  'inbox.test.ts',
  'postgres.takeover.test.ts',
];

export default class SlowFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = LONGEST_FIRST.indexOf(path.basename(f.moduleId));
      return i < 0 ? LONGEST_FIRST.length : i;
    };
    return sorted.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}
