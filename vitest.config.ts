import { defineConfig } from 'vitest/config';
import SlowFilesFirst from './test/setup/slowFilesFirst.js';

/** Files that need the machine to themselves: run after all the others, one at a time. */
const ALONE = ['test/chaos.alone.test.ts'];

export default defineConfig({
  test: {
    // Integration suites spawn real daemons and stage scripts. Deadlines, not waits: a passing test takes
    // no longer for them, and a 2-core machine shared with other work (or two workers) needs the headroom.
    testTimeout: 90_000,
    hookTimeout: 60_000,
    pool: 'forks',
    sequence: { sequencer: SlowFilesFirst },
    // Stops a bare `npx vitest` on a dist/ older than src/ (the tests run the built cli).
    globalSetup: ['./test/setup/distIsFresh.ts'],
    reporters: ['default', './test/helpers/summaryReporter.ts'],
    projects: [
      {
        extends: true,
        // Files are independent (own temp dirs, PostgreSQL schemas named by the worker's pid): two run
        // at once, one per core, the long ones first.
        test: { name: 'parallel', include: ['test/**/*.test.ts'], exclude: ALONE, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'alone', include: ALONE, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
