/**
 * `cairn state …` through the real binary: every verb on a PostgreSQL store (127.0.0.1:5432, a schema
 * per test), where the state lives in the store's schema without any `state` key in the config.
 */
import { describeStateCliVerbs } from './helpers/stateCliVerbs.js';

describeStateCliVerbs(['postgres']);
