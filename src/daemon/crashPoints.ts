/**
 * Deliberate crashes for recovery tests: with CAIRN_CRASH_AT=<label> the daemon SIGKILLs itself the
 * first time it reaches that point, exactly as a power cut or OOM kill would stop it.
 */
export const CRASH_POINTS = [
  'after-claim', // the run's lease is committed; the stage has not been spawned
  'after-stage-exit', // the stage program exited; its result is not recorded yet
  'after-result', // the stage result is committed; nothing has acted on it yet
  'after-inbox-insert', // an inbox file's tasks are committed; the file has not been moved
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export function crashPoint(label: CrashPoint): void {
  if (process.env.CAIRN_CRASH_AT === label) process.kill(process.pid, 'SIGKILL');
}
