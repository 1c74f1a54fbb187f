import { defineConfig } from 'vitest/config';
import SlowFilesFirst from './test/setup/slowFilesFirst.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Files are independent (own temp dirs, PostgreSQL schemas named by the worker's pid): two run at once,
    // one per core, the long ones first.
    maxWorkers: 2,
    sequence: { sequencer: SlowFilesFirst },
    // Integration suites spawn real daemons and stage scripts. Deadlines, not waits: a passing test takes
    // no longer for them, and a 2-core machine shared with other work (or two workers) needs the headroom.
    testTimeout: 90_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Stops a bare `npx vitest` on a dist/ older than src/ (the tests run the built cli).
    globalSetup: ['./test/setup/distIsFresh.ts'],
    reporters: ['default', './test/helpers/summaryReporter.ts'],
  },
});
