/**
 * How a failed command ends, for both the commander program (main.ts) and the read fast path
 * (src/cairn.ts): the message on stderr, the stack with CAIRN_DEBUG, and DESIGN §6's exit code
 * (2 for usage and config errors, 1 for anything else).
 */
import { CairnError, toError } from '../errors.js';

export function reportFailure(e: unknown): number {
  const error = toError(e);
  process.stderr.write(`cairn: ${error.message}\n`);
  if (process.env.CAIRN_DEBUG && error.stack) process.stderr.write(`${error.stack}\n`);
  return error instanceof CairnError ? error.exitCode : 1;
}
