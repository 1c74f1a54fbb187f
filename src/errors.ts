/**
 * Every error cairn shows a user. Each has a stable `code` for scripts and the exit code of
 * DESIGN §6: 1 for operational errors (unknown task, wrong state, lock or I/O), 2 for usage and config.
 * Only `src/cli/reportFailure.ts` turns them into exit codes.
 */
export class CairnError extends Error {
  readonly code: string = 'CAIRN_ERROR';
  readonly exitCode: 1 | 2 = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad command-line arguments: a malformed id, a missing flag, an unknown option. */
export class UsageError extends CairnError {
  override readonly code = 'USAGE';
  override readonly exitCode = 2;
}

/** A config file or key that cannot be used; the message names the key path. */
export class ConfigError extends CairnError {
  override readonly code = 'CONFIG';
  override readonly exitCode = 2;
}

export class TaskNotFoundError extends CairnError {
  override readonly code = 'TASK_NOT_FOUND';
  constructor(readonly taskId: number) {
    super(`task ${taskId} does not exist; \`cairn list\` shows the tasks there are`);
  }
}

/** An operation the task's state does not allow (approve outside a gate, retry of a running task, …). */
export class InvalidTransitionError extends CairnError {
  override readonly code = 'INVALID_TRANSITION';
}

/** Another writer changed the task between our read and our write, more often than we retry. */
export class ConflictError extends CairnError {
  override readonly code = 'CONFLICT';
}

/** The database cannot be opened or used: not SQLite, damaged, newer than this binary, locked, disk full. */
export class StoreError extends CairnError {
  override readonly code = 'STORE';
}

/** The database server could not be reached (down, connection cut): the same call may work later. */
export class StoreUnavailableError extends StoreError {}

export class CheckpointNotFoundError extends CairnError {
  override readonly code = 'CHECKPOINT_NOT_FOUND';
}

/** The key-value state backend cannot be used: Redis down, a state file damaged, a lock never freed. */
export class StateBackendError extends CairnError {
  override readonly code = 'STATE_BACKEND';
}

/** `cairn state get`/`del` of a key that is not set. */
export class StateKeyNotFoundError extends CairnError {
  override readonly code = 'STATE_KEY_NOT_FOUND';
}

/**
 * A snapshot, restore, backup or archive that cannot be done: an unknown or damaged snapshot (checksum,
 * integrity_check), a live daemon on the data directory, pg_dump missing. Nothing was changed.
 */
export class SnapshotError extends CairnError {
  override readonly code = 'SNAPSHOT';
}

/** A legacy path cairn cannot import: missing, unreadable, or holding nothing it knows. */
export class ImportError extends CairnError {
  override readonly code = 'IMPORT';
}

/**
 * A stage's result the engine would not record: the run lost its lease to another session (`fenced`),
 * its result was recorded already (`duplicate`), or the task moved on past that attempt (`stale`).
 * Nothing was written. A daemon logs it and carries on; a library caller's recordStageResult rejects.
 */
export class StageResultRefused extends CairnError {
  override readonly code = 'STAGE_RESULT_REFUSED';
  constructor(
    message: string,
    readonly reason: 'stale' | 'fenced' | 'duplicate',
  ) {
    super(message);
  }
}

/**
 * An inbox file that cannot become tasks: not valid JSON, YAML or front matter, an empty request, an
 * unknown key, too large, not a regular file. The daemon moves it to the inbox's rejected folder with
 * this message; exit 2 because, like a bad config, the fix is to correct the file.
 */
export class InboxFileError extends CairnError {
  override readonly code = 'INBOX_FILE';
  override readonly exitCode = 2;
}

/** `cairn logs`: a run with no log here to show (not run yet, not found, or its log is on another host). */
export class StageLogError extends CairnError {
  override readonly code = 'STAGE_LOG';
}

/** `cairn init` would replace a file that is there: nothing was written. */
export class StarterExistsError extends CairnError {
  override readonly code = 'EXISTS';
}

/** Routes every `catch (e: unknown)` through one place, so a thrown string or object still has a message. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  if (typeof value === 'string') return new Error(value);
  try {
    return new Error(JSON.stringify(value));
  } catch {
    return new Error(String(value));
  }
}
