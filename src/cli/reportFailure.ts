/**
 * How a failed command ends, for both the commander program (main.ts) and the read fast path
 * (src/cairn.ts): the message on stderr, the stack with CAIRN_DEBUG, and DESIGN §6's exit code
 * (2 for usage and config errors, 1 for anything else). A command run with --json also prints
 * `{"error": {"code", "message"}}` on stdout, so a script reads the failure where it reads results.
 */
import { CairnError, toError } from '../errors.js';

/** The code a script sees for an error that is not one of cairn's own (a bug, or an unexpected system error). */
export const UNEXPECTED_ERROR_CODE = 'UNEXPECTED';

export interface FailureOptions {
  /** The command was run with --json: print the error as JSON on stdout as well. */
  json?: boolean;
}

/** Writes the failure to stderr (and stdout with `json`); returns the exit code for the caller to set. */
export function reportFailure(e: unknown, options: FailureOptions = {}): number {
  const error = toError(e);
  process.stderr.write(`cairn: ${error.message}\n`);
  if (process.env.CAIRN_DEBUG && error.stack) process.stderr.write(`${error.stack}\n`);
  if (options.json) writeJsonError(error instanceof CairnError ? error.code : UNEXPECTED_ERROR_CODE, error.message);
  return error instanceof CairnError ? error.exitCode : 1;
}

/** `{"error": {"code", "message"}}` on stdout, one line. */
export function writeJsonError(code: string, message: string): void {
  process.stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
}
