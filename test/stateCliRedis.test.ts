/** `cairn state …` through the real binary: every verb on the Redis backend (127.0.0.1:6379), chosen only by config. */
import { describeStateCliVerbs } from './helpers/stateCliVerbs.js';

describeStateCliVerbs(['redis']);
