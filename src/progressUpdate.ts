/**
 * What a long operation (import, migrate-store, state migrate, restore, backup) reports as it goes,
 * through a callback its caller passes: the step it is in and how far along. The operations stay free
 * of terminal code; the CLI draws the updates (src/cli/progress.ts), a library caller may ignore them.
 */
export interface ProgressUpdate {
  /** What is being done now, e.g. "copying tasks" or "hashing the copy". */
  step: string;
  /** Units done so far in this step; absent for a step that cannot count (a copy done in one call). */
  done?: number;
  /** Units the step has in all, when known. */
  total?: number;
  /** What a unit is: rows, pages, bytes, tasks… (bytes are shown in KiB/MiB). */
  unit?: string;
}

export type OnProgress = (update: ProgressUpdate) => void;

/** `onProgress` with each update's step prefixed, for an operation made of others ("pre-restore snapshot: copying"). Pure. */
export function prefixSteps(prefix: string, onProgress: OnProgress | undefined): OnProgress | undefined {
  return onProgress && ((u) => onProgress({ ...u, step: `${prefix}: ${u.step}` }));
}
