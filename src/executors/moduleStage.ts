/**
 * Runs a module stage in-process: the module's default export (or a function handed to the library
 * API) is called as `async (input, ctx) => output`, with an AbortSignal that fires on timeout or cancel.
 * An in-process function cannot be killed; past its timeout its result is ignored.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StateBackendError, toError } from '../errors.js';
import { bindNamespace, taskNamespace } from '../state/stateNamespace.js';
import type { ModuleStageFn, ResolvedModuleStage, StageResult, StageRunRequest } from './types.js';

async function loadStageFunction(module: string | ModuleStageFn): Promise<ModuleStageFn> {
  if (typeof module === 'function') return module;
  const loaded = (await import(pathToFileURL(module).href)) as { default?: unknown };
  if (typeof loaded.default !== 'function') {
    throw new Error(`${module} has no default export function; export \`default async (input, ctx) => output\``);
  }
  return loaded.default as ModuleStageFn;
}

/** What ctx.state does in a run started without a state backend (runStage called directly). */
const noState = () => Promise.reject(new StateBackendError('this stage run has no key-value state: pass `state` in the StageRunRequest'));

function appendLog(file: string, line: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  appendFileSync(file, line, { mode: 0o600 });
}

/** Calls the stage function and resolves with its outcome; never throws. Appends to the log file. */
export async function runModuleStage(request: StageRunRequest & { stage: ResolvedModuleStage }): Promise<StageResult> {
  const { stage, input, logFile, outputBytes } = request;
  // Only a timeout needs a signal of the stage's own; otherwise the run's signal is passed on as it is
  // (an AbortController per run is a measurable share of a no-op stage's cost).
  const controller = stage.timeoutMs === null ? null : new AbortController();
  const onAbort = () => controller?.abort(request.signal.reason);
  if (controller) request.signal.addEventListener('abort', onAbort);
  let timer: NodeJS.Timeout | undefined;

  const stopped = new Promise<StageResult>((resolve) => {
    const stopWith = (reason: 'timeout' | 'aborted') => {
      const message = reason === 'timeout' ? `module stage passed its timeout of ${stage.timeoutMs} ms` : 'stopped by cairn';
      controller?.abort(new Error(message));
      resolve({ ok: false, reason, message, exitCode: null, signal: null });
    };
    if (request.signal.aborted) stopWith('aborted');
    request.signal.addEventListener('abort', () => stopWith('aborted'));
    if (stage.timeoutMs !== null) timer = setTimeout(() => stopWith('timeout'), stage.timeoutMs);
  });

  const ran = (async (): Promise<StageResult> => {
    try {
      const fn = await loadStageFunction(stage.module);
      const output = await fn(input, {
        signal: controller?.signal ?? request.signal,
        logger: request.logger,
        taskId: input.task_id,
        stage: input.stage,
        attempt: input.attempt,
        runId: input.run_id,
        dataDir: request.dataDir,
        state: request.state ?? bindNamespace(noState, taskNamespace(input.task_id)),
      });
      // A module stage logs through ctx.logger; its own log file is written only when there is more to say.
      const text = JSON.stringify(output ?? null);
      if (Buffer.byteLength(text) > outputBytes) {
        appendLog(logFile, `${text}\n[cairn] output was longer than limits.outputBytes (${outputBytes}); stored truncated\n`);
        return { ok: true, output: Buffer.from(text).subarray(0, outputBytes).toString('utf8'), truncated: true };
      }
      return { ok: true, output: output ?? null, truncated: false };
    } catch (e) {
      const error = toError(e);
      appendLog(logFile, `[cairn] module stage threw: ${error.stack ?? error.message}\n`);
      return { ok: false, reason: 'error', message: error.message, exitCode: null, signal: null };
    }
  })();

  try {
    return await Promise.race([ran, stopped]);
  } finally {
    clearTimeout(timer);
    request.signal.removeEventListener('abort', onAbort);
    await request.state?.close().catch(() => undefined);
  }
}
