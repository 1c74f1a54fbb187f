/**
 * The quick chaos scenarios that need the machine to themselves (RUN_ALONE in chaos/quickTests.ts):
 * vitest.config.ts runs this file after all the others, on one worker.
 */
import { quickChaosTests } from './chaos/quickTests.js';

await quickChaosTests('alone');
