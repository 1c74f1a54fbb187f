/**
 * Deliberate crashes for recovery tests: with CAIRN_CRASH_AT=<label> the process (a daemon, or a CLI
 * verb such as `cairn import` or `cairn snapshot`) SIGKILLs itself when it reaches that point, exactly
 * as a power cut or OOM kill would stop it. By default it dies the first time; CAIRN_CRASH_AFTER=<n>
 * lets it pass the point n times first, so a chaos run can stop it at a later write, task or file.
 */
export const CRASH_POINTS = [
  'before-commit', // inside a store write transaction: BEGIN IMMEDIATE ran, its statements too, COMMIT not yet
  'after-claim', // the run's lease is committed; the stage has not been spawned
  'after-stage-exit', // the stage program exited; its result is not recorded yet
  'after-result', // the stage result is committed; nothing has acted on it yet
  'after-inbox-insert', // an inbox file's tasks are committed; the file has not been moved
  'snapshot-before-rename', // a snapshot's copy is complete in NAME.db.partial; not renamed, no record
  'snapshot-before-record', // a snapshot's NAME.db is in place; its catalog record NAME.json is not written
  'import-between-tasks', // `cairn import` committed one legacy item; the next is not imported yet
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

const armed = process.env.CAIRN_CRASH_AT;
let passesLeft = Number(process.env.CAIRN_CRASH_AFTER ?? 0) || 0;

/**
 * Whether `label` is the armed point, read once at start-up: a hot path (every store write) tests
 * this constant instead of calling crashPoint, so an unarmed process pays nothing.
 */
export const isArmedAtCommit = armed === 'before-commit';

/** SIGKILLs this process if `label` is armed and its passes are used up; otherwise returns. */
export function crashPoint(label: CrashPoint): void {
  if (armed !== label) return;
  if (passesLeft-- > 0) return;
  process.kill(process.pid, 'SIGKILL');
}

/** Wraps a write transaction's body so the armed process dies after its statements, before COMMIT. */
export function crashBeforeCommit<T>(fn: () => T): () => T {
  return () => {
    const result = fn();
    crashPoint('before-commit');
    return result;
  };
}
