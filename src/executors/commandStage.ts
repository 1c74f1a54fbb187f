/**
 * Runs a command stage: an argv array (never a shell string), the stage input as JSON on stdin, the
 * CAIRN_* environment, its own process group (so a timeout or cancel reaches grandchildren), stdout and
 * stderr appended to the run's log file, and as the output the file CAIRN_OUTPUT names when the program
 * wrote it, else stdout, up to `outputBytes` either way.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { ResolvedCommandStage, StageResult, StageRunRequest } from './types.js';
import { parseStageOutput } from './stageOutput.js';
import { prepareOutputFile, readOutputFile, removeOutputFile } from './outputFile.js';

/** How long a stage gets between SIGTERM and SIGKILL when it is stopped. */
const KILL_GRACE_MS = 2000;
/** After the leader exits, how long to wait for descendants still holding its stdout. */
const DRAIN_AFTER_EXIT_MS = 1000;

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** True while any process is left in group `pgid` (EPERM: there is one, just not ours to signal). */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function describeSpawnError(argv0: string, error: NodeJS.ErrnoException): string {
  if (error.code === 'ENOENT') return `cannot start ${argv0}: no such file or program (ENOENT)`;
  if (error.code === 'EACCES') return `cannot start ${argv0}: permission denied; is it executable? (EACCES)`;
  return `cannot start ${argv0}: ${error.message}`;
}

/** Spawns the stage and resolves when it has finished or been stopped. Writes the log file; never throws. */
export function runCommandStage(request: StageRunRequest & { stage: ResolvedCommandStage }): Promise<StageResult> {
  const { stage, input, logFile, outputBytes, signal } = request;
  mkdirSync(path.dirname(logFile), { recursive: true, mode: 0o700 });
  const log = createWriteStream(logFile, { flags: 'a', mode: 0o600 });
  // A full disk (ENOSPC) must not take the daemon down: the stage runs on, its output is still kept in memory.
  let logError: Error | null = null;
  log.on('error', (e) => {
    if (!logError) request.logger.error({ err: e, logFile }, `cannot write the stage log ${logFile}: ${e.message}; the stage carries on without it`);
    logError = e;
  });

  return new Promise<StageResult>((resolve) => {
    if (stage.outputFile) {
      try {
        prepareOutputFile(stage.outputFile);
      } catch (e) {
        const message = `cannot prepare the output file ${stage.outputFile} (CAIRN_OUTPUT): ${(e as Error).message}; check that the data directory is writable`;
        log.write(`[cairn] ${message}\n`);
        if (logError || log.destroyed) resolve({ ok: false, reason: 'spawn', message, exitCode: null, signal: null });
        else log.end(() => resolve({ ok: false, reason: 'spawn', message, exitCode: null, signal: null }));
        return;
      }
    }
    const stdoutChunks: Buffer[] = [];
    let stdoutBytes = 0;
    let truncated = false;
    let stopReason: 'timeout' | 'idle' | 'aborted' | null = null;
    let settled = false;
    let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const timers: NodeJS.Timeout[] = [];

    const child = spawn(stage.argv[0], stage.argv.slice(1), {
      cwd: stage.cwd,
      env: stage.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      shell: false,
    });

    const finish = (result: StageResult) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      if (idleTimer) clearTimeout(idleTimer);
      signal.removeEventListener('abort', onAbort);
      if (logError || log.destroyed) resolve(result);
      else log.end(() => resolve(result));
    };

    // SIGTERM to the group, then SIGKILL after the grace to whatever is left of it. The SIGKILL timer is
    // not in `timers`: the run settles once the leader is gone, and a descendant ignoring SIGTERM must not
    // outlive it.
    let killTimer: NodeJS.Timeout | null = null;
    const endGroup = (pgid: number) => {
      killGroup(pgid, 'SIGTERM');
      if (killTimer || !groupExists(pgid)) return;
      killTimer = setTimeout(() => killGroup(pgid, 'SIGKILL'), KILL_GRACE_MS).unref();
    };

    const stop = (reason: 'timeout' | 'idle' | 'aborted') => {
      if (stopReason || exited || child.pid === undefined) return;
      stopReason = reason;
      endGroup(child.pid);
    };

    const onAbort = () => stop('aborted');
    let idleTimer: NodeJS.Timeout | null = null;
    const touch = () => {
      if (stage.idleTimeoutMs === null) return;
      if (idleTimer) clearTimeout(idleTimer);
      idleTimer = setTimeout(() => stop('idle'), stage.idleTimeoutMs);
    };

    child.on('error', (error: NodeJS.ErrnoException) => {
      log.write(`[cairn] ${describeSpawnError(stage.argv[0], error)}\n`);
      finish({ ok: false, reason: 'spawn', message: describeSpawnError(stage.argv[0], error), exitCode: null, signal: null });
    });
    if (child.pid === undefined) return; // 'error' follows

    request.onSpawn?.(child.pid);
    if (signal.aborted) stop('aborted');
    signal.addEventListener('abort', onAbort);
    if (stage.timeoutMs !== null) timers.push(setTimeout(() => stop('timeout'), stage.timeoutMs));
    touch();

    child.stdin.on('error', () => {
      // EPIPE: the program does not read its input; that is its right.
    });
    child.stdin.end(JSON.stringify(input));

    child.stdout.on('data', (chunk: Buffer) => {
      touch();
      log.write(chunk);
      if (stdoutBytes < outputBytes) {
        const room = outputBytes - stdoutBytes;
        stdoutChunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
        if (chunk.length > room) truncated = true;
      } else if (chunk.length > 0) {
        truncated = true;
      }
      stdoutBytes += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      touch();
      log.write(chunk);
    });

    const settle = () => {
      if (!exited) return;
      const { code, signal: exitSignal } = exited;
      const captured = takeOutput();
      const stdout = captured.text;
      if (stopReason === 'aborted') {
        finish({ ok: false, reason: 'aborted', message: 'stopped by cairn', exitCode: code, signal: exitSignal, output: stdout });
      } else if (stopReason === 'timeout' || stopReason === 'idle') {
        const limit = stopReason === 'timeout' ? `timeout of ${stage.timeoutMs} ms` : `idle timeout of ${stage.idleTimeoutMs} ms`;
        const message = `${stage.argv[0]} was stopped after its ${limit}`;
        log.write(`[cairn] ${message}\n`);
        finish({ ok: false, reason: 'timeout', message, exitCode: code, signal: exitSignal, output: stdout });
      } else if (exitSignal) {
        const message = `${stage.argv[0]} was killed by ${exitSignal}`;
        finish({ ok: false, reason: 'signal', message, exitCode: null, signal: exitSignal, output: stdout });
      } else if (code !== 0) {
        const message = `${stage.argv[0]} exited with code ${code}`;
        finish({ ok: false, reason: 'exit', message, exitCode: code, signal: null, output: stdout });
      } else if (captured.error) {
        log.write(`[cairn] ${captured.error}\n`);
        finish({ ok: false, reason: 'output', message: captured.error, exitCode: code, signal: null });
      } else {
        finish({ ok: true, output: captured.truncated ? stdout : parseStageOutput(stdout), truncated: captured.truncated, outputSource: captured.source });
      }
    };

    /** The output: the CAIRN_OUTPUT file when the program wrote it (then removed), else stdout. */
    const takeOutput = (): { text: string; truncated: boolean; source: 'stdout' | 'file'; error?: string } => {
      const fromFile = stage.outputFile ? readOutputFile(stage.outputFile, outputBytes) : { written: false as const };
      if (!fromFile.written) {
        if (truncated) log.write(`[cairn] stdout was longer than limits.outputBytes (${outputBytes}); the output keeps the first part, this log has all of it\n`);
        return { text: Buffer.concat(stdoutChunks).toString('utf8'), truncated, source: 'stdout' };
      }
      if ('error' in fromFile) return { text: '', truncated: false, source: 'file', error: fromFile.error };
      if (fromFile.truncated) {
        log.write(`[cairn] ${stage.outputFile} (CAIRN_OUTPUT) holds ${fromFile.sizeBytes} bytes, more than limits.outputBytes (${outputBytes}); the output keeps the first part, the file is kept with all of it\n`);
      } else {
        log.write(`[cairn] the output is the ${fromFile.sizeBytes} bytes written to CAIRN_OUTPUT; stdout above is only logged\n`);
        removeOutputFile(stage.outputFile!);
      }
      return { text: fromFile.text, truncated: fromFile.truncated, source: 'file' };
    };

    child.on('exit', (code, exitSignal) => {
      exited = { code, signal: exitSignal };
      // Descendants left behind by the stage would hold its stdout open and outlive it: end the group.
      if (child.pid !== undefined) endGroup(child.pid);
      timers.push(setTimeout(settle, DRAIN_AFTER_EXIT_MS).unref());
    });
    child.on('close', settle);
  });
}
