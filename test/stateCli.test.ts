/**
 * `cairn state …` through the real binary: every verb on the SQLite and JSON backends, chosen only by
 * config (Redis: stateCliRedis.test.ts; errors and exit codes: stateCliErrors.test.ts).
 */
import { describeStateCliVerbs } from './helpers/stateCliVerbs.js';

describeStateCliVerbs(['sqlite', 'json']);
