/**
 * The quick variant of the chaos suite (issue 8) inside `npm test`: every scenario with few iterations,
 * each one required to hold its target, beside other test files; the few in RUN_ALONE run in
 * chaos.alone.test.ts. `npm run chaos` runs the full counts.
 */
import { quickChaosTests } from './chaos/quickTests.js';

await quickChaosTests('beside others');
