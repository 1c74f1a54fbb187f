/**
 * The stage executors against real processes: the bash fixtures in test/fixtures/stages/ are spawned for
 * real, killed for real, and their process groups are checked afterwards. No mocks.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig, type ConfigFile } from '../src/config.js';
import { resolveStage, type RunIdentity } from '../src/executors/resolveStage.js';
import { runStage } from '../src/executors/runStage.js';
import { parseStageOutput } from '../src/executors/stageOutput.js';
import type {
  ModuleStageContext,
  ResolvedCommandStage,
  ResolvedStage,
  StageInput,
  StageResult,
  StageRunRequest,
} from '../src/executors/types.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/stages/', import.meta.url));
const fixture = (name: string) => path.join(FIXTURES, name);
const logger = pino({ level: 'silent' });

/** The executor's fixed SIGTERM → SIGKILL grace (KILL_GRACE_MS in commandStage.ts). */
const KILL_GRACE_MS = 2000;
/** Timers run off libuv's cached loop time, so one may fire a few ms before `Date.now()` says it is due. */
const EARLY_MS = 15;

function stageInput(overrides: Partial<StageInput> = {}): StageInput {
  return {
    task_id: 7,
    request: 'add a button',
    priority: 'normal',
    tags: ['ui'],
    depends_on: [3],
    stage: 'plan',
    attempt: 2,
    run_id: 'run-abc',
    outputs: { plan: { steps: ['a', 'b'] } },
    feedback: [{ source: 'review', stage: 'review', text: 'more tests', at: 1_700_000_000_000 }],
    ...overrides,
  };
}

/** A command stage built directly from a fixture script. */
function commandStage(script: string, options: Partial<Omit<ResolvedCommandStage, 'kind'>> & { args?: string[] } = {}): ResolvedCommandStage {
  const { args = [], ...rest } = options;
  return {
    kind: 'command',
    argv: [fixture(script), ...args],
    cwd: tempDir(),
    env: { ...(process.env as Record<string, string>) },
    timeoutMs: null,
    idleTimeoutMs: null,
    ...rest,
  };
}

/** Every process group a test spawned; whatever a failed test left running is SIGKILLed after it. */
const spawnedGroups: number[] = [];
afterEach(() => {
  for (const pgid of spawnedGroups.splice(0)) {
    if (liveGroupMembers(pgid).length > 0) process.kill(-pgid, 'SIGKILL');
  }
});

interface Run {
  result: StageResult;
  logFile: string;
  elapsedMs: number;
  /** The stage's pid (= its process group id), when it spawned. */
  pgid: number | null;
}

async function run(
  stage: ResolvedStage,
  options: Partial<Pick<StageRunRequest, 'input' | 'outputBytes' | 'signal' | 'dataDir' | 'logFile'>> & { onSpawn?: (pgid: number) => void } = {},
): Promise<Run> {
  const logFile = options.logFile ?? path.join(tempDir('cairn-logs-'), 'runs', 'run-abc', 'plan.log');
  let pgid: number | null = null;
  const started = Date.now();
  const result = await runStage({
    input: options.input ?? stageInput(),
    stage,
    dataDir: options.dataDir ?? tempDir(),
    logFile,
    outputBytes: options.outputBytes ?? 1_048_576,
    signal: options.signal ?? new AbortController().signal,
    logger,
    onSpawn: (id) => {
      pgid = id;
      spawnedGroups.push(id);
      options.onSpawn?.(id);
    },
  });
  return { result, logFile, elapsedMs: Date.now() - started, pgid };
}

const readLog = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');

/** Waits for a marker line the stage prints once it is up (its stdout goes to the log file). */
const waitForMarker = (logFile: string, marker: string) => waitFor(() => readLog(logFile).includes(marker), { what: `"${marker}" in ${logFile}` });

/**
 * True once `pid` no longer runs: ESRCH, or (Linux) a zombie. An orphan killed with its group is reaped by
 * init, and some container inits reap late, so a zombie counts as dead: it runs nothing and holds no pipe.
 */
function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return true;
    throw e;
  }
  if (process.platform !== 'linux') return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true; // reaped between the two checks
  }
}

/** Pids still running (not zombies) in process group `pgid`. */
function liveGroupMembers(pgid: number): number[] {
  const table = execFileSync('ps', ['-e', '-o', 'pid=,pgid=,stat='], { encoding: 'utf8' });
  return table
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, group, stat]) => pid && Number(group) === pgid && !stat.startsWith('Z'))
    .map(([pid]) => Number(pid));
}

async function expectGroupGone(pgid: number | null, ...pids: number[]): Promise<void> {
  expect(pgid).toBeTypeOf('number');
  // Before waiting: the leader is a real, distinct process group we are about to check.
  expect(pgid).toBeGreaterThan(1);
  await waitFor(() => liveGroupMembers(pgid!).length === 0, { timeoutMs: 5000, what: `process group ${pgid} to be empty` });
  for (const pid of [pgid!, ...pids]) await waitFor(() => isGone(pid), { timeoutMs: 5000, what: `pid ${pid} to be gone` });
}

function identity(overrides: Partial<RunIdentity> = {}): RunIdentity {
  return { taskId: 7, stage: 'plan', attempt: 2, runId: 'run-abc', ...overrides };
}

function config(partial: ConfigFile, baseDir = FIXTURES) {
  return defaultConfig({ dataDir: tempDir('cairn-data-'), ...partial }, baseDir);
}

function failure(result: StageResult): Extract<StageResult, { ok: false }> {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
  return result;
}

function success(result: StageResult): Extract<StageResult, { ok: true }> {
  if (!result.ok) throw new Error(`expected success, got ${JSON.stringify(result)}`);
  return result;
}

describe('parseStageOutput', () => {
  it('keeps JSON as JSON, other text as trimmed text, and nothing as null', () => {
    expect(parseStageOutput(' {"a":[1,2]}\n')).toEqual({ a: [1, 2] });
    expect(parseStageOutput('42\n')).toBe(42);
    expect(parseStageOutput('"quoted"')).toBe('quoted');
    expect(parseStageOutput('  {not json \n')).toBe('{not json');
    expect(parseStageOutput(' \n\t')).toBeNull();
  });
});

describe('command stages', () => {
  it('feeds the StageInput as JSON on stdin, sets CAIRN_* env, runs in cwd and parses JSON stdout', async () => {
    const workDir = tempDir();
    const cfg = config({
      stages: { plan: { run: ['./ok.sh', 'first arg'], cwd: workDir, env: { CAIRN_STAGE: 'spoofed', EXTRA: 'x' } } },
    });
    const stage = resolveStage(cfg, 'plan', identity({ attempt: 4, runId: 'run-xyz' }));
    expect(stage.kind).toBe('command');
    expect((stage as ResolvedCommandStage).argv[0]).toBe(fixture('ok.sh'));

    const input = stageInput({ attempt: 4, run_id: 'run-xyz' });
    const { result, logFile } = await run(stage, { input });
    const ok = success(result);
    expect(ok.truncated).toBe(false);
    expect(ok.output).toEqual({
      input,
      env: {
        CAIRN_TASK_ID: '7',
        // The identity wins over a stage's own env.
        CAIRN_STAGE: 'plan',
        CAIRN_ATTEMPT: '4',
        CAIRN_RUN_ID: 'run-xyz',
        CAIRN_DATA_DIR: cfg.dataDir,
      },
      cwd: workDir,
      arg1: 'first arg',
    });
    expect(readLog(logFile)).toContain('"CAIRN_RUN_ID":"run-xyz"');
  });

  it('keeps stdout that is not JSON as trimmed text', async () => {
    const { result } = await run(commandStage('garbage.sh'));
    expect(success(result)).toEqual({ ok: true, output: 'this is {not json', truncated: false, outputSource: 'stdout' });
  });

  it('reports exit code 3 as reason exit, and writes stdout and stderr to a 0600 log in a 0700 directory', async () => {
    const logDir = path.join(tempDir('cairn-logs-'), 'runs', 'nested');
    const logFile = path.join(logDir, 'plan.log');
    const { result } = await run(commandStage('exit3.sh'), { logFile });
    const failed = failure(result);
    expect(failed).toMatchObject({ ok: false, reason: 'exit', exitCode: 3, signal: null, output: 'exit3 stdout\n' });
    expect(failed.message).toContain('exited with code 3');

    const log = readLog(logFile);
    expect(log).toContain('exit3 stdout\n');
    expect(log).toContain('exit3 stderr\n');
    expect(statSync(logFile).mode & 0o777).toBe(0o600);
    expect(statSync(logDir).mode & 0o777).toBe(0o700);
    expect(statSync(path.dirname(logDir)).mode & 0o777).toBe(0o700);

    // A second attempt appends to the same log rather than replacing it.
    await run(commandStage('exit3.sh'), { logFile });
    expect(readLog(logFile).split('exit3 stderr').length - 1).toBe(2);
  });

  it('reports a stage killed by a signal with reason signal, distinct from one that exits 1', async () => {
    const killed = commandStage('sleep.sh');
    const logFile = path.join(tempDir('cairn-logs-'), 'kill.log');
    const killedRun = run(killed, {
      logFile,
      onSpawn: (pid) => {
        void waitForMarker(logFile, 'sleep.sh started').then(() => process.kill(pid, 'SIGKILL'));
      },
    });
    const exited = run(commandStage('exit1.sh'));

    const { result: killedResult, pgid } = await killedRun;
    expect(failure(killedResult)).toMatchObject({ reason: 'signal', signal: 'SIGKILL', exitCode: null });
    expect(failure(killedResult).message).toContain('SIGKILL');
    expect(failure((await exited).result)).toMatchObject({ reason: 'exit', exitCode: 1, signal: null, output: 'exit1 stdout\n' });
    // Only the leader was killed; its foreground `sleep 30` went with the group.
    await expectGroupGone(pgid);
  });

  it('stops a stage at its timeout and kills its whole process group, grandchildren included', async () => {
    const pidFile = path.join(tempDir(), 'grandchild.pid');
    const { result, pgid, elapsedMs } = await run(commandStage('grandchild.sh', { args: [pidFile], timeoutMs: 800 }));
    const failed = failure(result);
    expect(failed).toMatchObject({ reason: 'timeout', signal: 'SIGTERM', exitCode: null });
    expect(failed.message).toContain('timeout of 800 ms');
    expect(failed.output).toContain('grandchild.sh started');
    expect(elapsedMs).toBeGreaterThanOrEqual(800 - EARLY_MS);
    expect(elapsedMs).toBeLessThan(800 + KILL_GRACE_MS);

    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(grandchild).toBeGreaterThan(1);
    expect(grandchild).not.toBe(pgid);
    await expectGroupGone(pgid, grandchild);
  });

  it('after a timeout, SIGKILLs a grandchild that ignores SIGTERM once the grace is over', async () => {
    const pidFile = path.join(tempDir(), 'grandchild.pid');
    const { result, pgid } = await run(commandStage('grandchild-ignore-term.sh', { args: [pidFile], timeoutMs: 500 }));
    expect(failure(result)).toMatchObject({ reason: 'timeout', signal: 'SIGTERM' });
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(grandchild).toBeGreaterThan(1);
    // The leader died of SIGTERM; the grandchild ignored it and must still get SIGKILL after the grace.
    await expectGroupGone(pgid, grandchild);
  });

  it('after a successful exit, ends a leftover descendant that ignores SIGTERM', async () => {
    const pidFile = path.join(tempDir(), 'grandchild.pid');
    const { result, pgid } = await run(commandStage('grandchild-ignore-term.sh', { args: [pidFile, '0'] }));
    expect(success(result).output).toBe('grandchild-ignore-term.sh started');
    await expectGroupGone(pgid, Number(readFileSync(pidFile, 'utf8')));
  });

  it('kills a stage that ignores SIGTERM with SIGKILL after the grace', async () => {
    const controller = new AbortController();
    const logFile = path.join(tempDir('cairn-logs-'), 'ignore.log');
    let abortedAt = 0;
    const { result, pgid } = await run(commandStage('ignore-term.sh'), {
      logFile,
      signal: controller.signal,
      // Abort only once the trap is installed (the marker follows it), so SIGTERM is ignored for sure.
      onSpawn: () => {
        void waitForMarker(logFile, 'ignore-term.sh started').then(() => {
          abortedAt = Date.now();
          controller.abort();
        });
      },
    });
    const stoppedAfter = Date.now() - abortedAt;
    expect(failure(result)).toMatchObject({ reason: 'aborted', signal: 'SIGKILL', exitCode: null });
    expect(abortedAt).toBeGreaterThan(0);
    expect(stoppedAfter).toBeGreaterThanOrEqual(KILL_GRACE_MS - EARLY_MS);
    expect(stoppedAfter).toBeLessThan(KILL_GRACE_MS + 3000);
    await expectGroupGone(pgid);
  });

  it('idleTimeout stops a silent stage early but not a chatty one before its overall timeout', async () => {
    const [silent, chatty] = await Promise.all([
      run(commandStage('silent-hang.sh', { idleTimeoutMs: 300 })),
      run(commandStage('chatty.sh', { idleTimeoutMs: 300, timeoutMs: 1000 })),
    ]);

    const silentFailure = failure(silent.result);
    expect(silentFailure).toMatchObject({ reason: 'timeout', signal: 'SIGTERM' });
    expect(silentFailure.message).toContain('idle timeout of 300 ms');
    expect(silent.elapsedMs).toBeGreaterThanOrEqual(300 - EARLY_MS);
    expect(silent.elapsedMs).toBeLessThan(1000 + KILL_GRACE_MS);
    expect(readLog(silent.logFile)).toContain('idle timeout of 300 ms');

    const chattyFailure = failure(chatty.result);
    expect(chattyFailure).toMatchObject({ reason: 'timeout', signal: 'SIGTERM' });
    expect(chattyFailure.message).toContain('its timeout of 1000 ms');
    expect(chattyFailure.message).not.toContain('idle');
    expect(chatty.elapsedMs).toBeGreaterThanOrEqual(1000 - EARLY_MS);
    expect(chattyFailure.output?.split('tick').length).toBeGreaterThan(5);

    await expectGroupGone(silent.pgid);
    await expectGroupGone(chatty.pgid);
  });

  it('stops a stage when its AbortSignal fires, reporting aborted and killing the group', async () => {
    const controller = new AbortController();
    const logFile = path.join(tempDir('cairn-logs-'), 'abort.log');
    const pidFile = path.join(tempDir(), 'grandchild.pid');
    const { result, pgid, elapsedMs } = await run(commandStage('grandchild.sh', { args: [pidFile], timeoutMs: 20_000 }), {
      logFile,
      signal: controller.signal,
      onSpawn: () => void waitForMarker(logFile, 'grandchild.sh started').then(() => controller.abort()),
    });
    const failed = failure(result);
    expect(failed).toMatchObject({ reason: 'aborted', signal: 'SIGTERM', message: 'stopped by cairn' });
    expect(failed.output).toContain('grandchild.sh started');
    expect(elapsedMs).toBeLessThan(KILL_GRACE_MS + 3000);
    await expectGroupGone(pgid, Number(readFileSync(pidFile, 'utf8')));
  });

  it('stops at once a stage whose AbortSignal fired before it started', async () => {
    const { result, pgid, elapsedMs } = await run(commandStage('sleep.sh'), { signal: AbortSignal.abort() });
    expect(failure(result)).toMatchObject({ reason: 'aborted' });
    expect(elapsedMs).toBeLessThan(KILL_GRACE_MS + 3000);
    await expectGroupGone(pgid);
  });

  it('reports a missing program as reason spawn, naming the path, in the result and the log', async () => {
    const baseDir = tempDir();
    const stage = resolveStage(config({ stages: { plan: { run: ['./stages/missing.sh'] } } }, baseDir), 'plan', identity());
    const missing = path.join(baseDir, 'stages', 'missing.sh');
    const { result, logFile, pgid } = await run(stage);
    const failed = failure(result);
    expect(failed).toMatchObject({ reason: 'spawn', exitCode: null, signal: null });
    expect(failed.message).toContain(missing);
    expect(failed.message).toContain('ENOENT');
    expect(readLog(logFile)).toContain(missing);
    expect(pgid).toBeNull();

    const bare = await run(commandStage('ok.sh', { argv: ['cairn-no-such-program-here'] }));
    expect(failure(bare.result)).toMatchObject({ reason: 'spawn' });
    expect(failure(bare.result).message).toContain('cairn-no-such-program-here');
  });

  it('reports a file that is not executable as reason spawn, mentioning permission', async () => {
    const script = path.join(tempDir(), 'not-executable.sh');
    writeFileSync(script, '#!/usr/bin/env bash\necho "should not run"\n', { mode: 0o644 });
    const { result, logFile } = await run(commandStage('ok.sh', { argv: [script] }));
    const failed = failure(result);
    expect(failed.reason).toBe('spawn');
    expect(failed.message).toContain(script);
    expect(failed.message).toMatch(/permission denied/i);
    expect(readLog(logFile)).not.toContain('should not run');
  });

  it('truncates output past outputBytes in the result but keeps all of it in the log', async () => {
    const { result, logFile } = await run(commandStage('big.sh', { args: ['1000'] }), { outputBytes: 100 });
    const ok = success(result);
    expect(ok.truncated).toBe(true);
    expect(ok.output).toBe('0123456789\n'.repeat(10).slice(0, 100));

    const log = readLog(logFile);
    expect(log.startsWith('0123456789\n'.repeat(1000))).toBe(true);
    expect(log).toContain('limits.outputBytes (100)');

    // The boundary: exactly outputBytes is whole (and parsed), one byte less is truncated.
    const exact = success((await run(commandStage('big.sh', { args: ['10'] }), { outputBytes: 110 })).result);
    expect(exact).toEqual({ ok: true, output: '0123456789\n'.repeat(10).trim(), truncated: false, outputSource: 'stdout' });
    const under = success((await run(commandStage('big.sh', { args: ['10'] }), { outputBytes: 109 })).result);
    expect(under.truncated).toBe(true);
    expect(under.output).toBe('0123456789\n'.repeat(10).slice(0, 109));
  });

  describe('CAIRN_OUTPUT', () => {
    const outputStage = (args: string[]) => {
      const cfg = config({ stages: { plan: { run: ['./output-file.sh', ...args] } } });
      const stage = resolveStage(cfg, 'plan', identity()) as ResolvedCommandStage;
      return { cfg, stage, file: path.join(cfg.dataDir, 'runs', '7', 'plan-2.out') };
    };

    it('takes the output from the file the program wrote; stdout goes only to the log', async () => {
      const { cfg, stage, file } = outputStage(['{"verdict":"approve","comments":"fine"}']);
      expect(stage.env.CAIRN_OUTPUT).toBe(file);
      const { result, logFile } = await run(stage);
      expect(success(result)).toEqual({ ok: true, output: { verdict: 'approve', comments: 'fine' }, truncated: false, outputSource: 'file' });
      const log = readLog(logFile);
      expect(log).toContain('thinking about it...');
      expect(log).toContain('{"verdict":"not this one"}');
      expect(log).toContain('written to CAIRN_OUTPUT');
      // The result holds it now: the file and its task's directory are gone; the runs directory is private.
      expect(existsSync(file)).toBe(false);
      expect(existsSync(path.dirname(file))).toBe(false);
      expect(statSync(path.join(cfg.dataDir, 'runs')).mode & 0o777).toBe(0o700);
    });

    it('keeps stdout as the output when the program writes no file, and never takes a file left from before', async () => {
      const { stage, file } = outputStage([]);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, '{"verdict":"approve","comments":"stale, from a restored attempt"}');
      const { result } = await run(stage);
      expect(success(result)).toMatchObject({ output: 'thinking about it...\n{"verdict":"not this one"}', outputSource: 'stdout' });
      expect(existsSync(file)).toBe(false);
    });

    it('truncates a file past outputBytes and keeps the file; a failed run reports the file as its output', async () => {
      const big = 'x'.repeat(500);
      const { stage, file } = outputStage([big]);
      const { result, logFile } = await run(stage, { outputBytes: 100 });
      expect(success(result)).toMatchObject({ output: 'x'.repeat(100), truncated: true, outputSource: 'file' });
      expect(readFileSync(file, 'utf8')).toBe(big);
      expect(readLog(logFile)).toContain('holds 500 bytes, more than limits.outputBytes (100)');

      const failing = outputStage(['tests failed: 3 of 10', '1']);
      const failed = failure((await run(failing.stage)).result);
      expect(failed).toMatchObject({ reason: 'exit', exitCode: 1, output: 'tests failed: 3 of 10' });
    });
  });

  it('passes task text with shell metacharacters verbatim: text is data, nothing runs', async () => {
    const workDir = tempDir();
    mkdirSync(path.join(workDir, 'x'));
    writeFileSync(path.join(workDir, 'x', 'keep'), 'keep');
    const request = 'do it $(touch pwned) ; rm -rf x && touch pwned2 | `touch pwned3` > pwned4 "quoted" \\ \'single\'\nnext line';
    const arg = '$(touch pwned-arg) ; rm -rf x && touch pwned-arg2';
    const input = stageInput({ request, tags: ['$(touch pwned-tag)'] });

    const { result } = await run(commandStage('ok.sh', { cwd: workDir, args: [arg] }), { input });
    const output = success(result).output as { input: StageInput; arg1: string; cwd: string };
    expect(output.input.request).toBe(request);
    expect(output.input.tags).toEqual(['$(touch pwned-tag)']);
    expect(output.arg1).toBe(arg);
    expect(output.cwd).toBe(workDir);
    expect(readdirSync(workDir)).toEqual(['x']);
    expect(readdirSync(path.join(workDir, 'x'))).toEqual(['keep']);
  });
});

describe('module stages', () => {
  it('calls a function stage with the input and context and returns its value', async () => {
    let seen: { input: StageInput; ctx: ModuleStageContext } | null = null;
    const plan = async (input: StageInput, ctx: ModuleStageContext) => {
      seen = { input, ctx };
      return { plan: `plan for ${input.request}` };
    };
    const cfg = config({});
    const stage = resolveStage(cfg, 'plan', identity(), { plan });
    expect(stage).toEqual({ kind: 'module', module: plan, timeoutMs: null });

    const input = stageInput();
    const dataDir = tempDir();
    const { result, logFile } = await run(stage, { input, dataDir });
    expect(result).toEqual({ ok: true, output: { plan: 'plan for add a button' }, truncated: false });
    expect(seen).not.toBeNull();
    const { input: gotInput, ctx } = seen!;
    expect(gotInput).toEqual(input);
    expect(ctx).toMatchObject({ taskId: 7, stage: 'plan', attempt: 2, runId: 'run-abc', dataDir });
    expect(ctx.signal.aborted).toBe(false);
    // A quiet success leaves no log file: module stages log through ctx.logger.
    expect(existsSync(logFile)).toBe(false);
  });

  it('reports a function that throws (async or not) as reason error, keeping the message', async () => {
    const asyncThrow = await run({ kind: 'module', module: async () => Promise.reject(new Error('boom: kept')), timeoutMs: null });
    expect(failure(asyncThrow.result)).toEqual({ ok: false, reason: 'error', message: 'boom: kept', exitCode: null, signal: null });
    expect(readLog(asyncThrow.logFile)).toContain('module stage threw: Error: boom: kept');
    expect(statSync(asyncThrow.logFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(asyncThrow.logFile)).mode & 0o777).toBe(0o700);

    const syncThrow = await run({
      kind: 'module',
      module: () => {
        throw new TypeError('sync boom');
      },
      timeoutMs: null,
    });
    expect(failure(syncThrow.result)).toMatchObject({ reason: 'error', message: 'sync boom' });
  });

  it('stops a function at its timeout and aborts the signal it was given', async () => {
    let signal: AbortSignal | null = null;
    const { result, elapsedMs } = await run({
      kind: 'module',
      module: (_input, ctx) => {
        signal = ctx.signal;
        return new Promise(() => {}); // never settles
      },
      timeoutMs: 300,
    });
    const failed = failure(result);
    expect(failed).toMatchObject({ reason: 'timeout', exitCode: null, signal: null });
    expect(failed.message).toContain('timeout of 300 ms');
    expect(elapsedMs).toBeGreaterThanOrEqual(300 - EARLY_MS);
    expect(elapsedMs).toBeLessThan(3000);
    expect(signal).not.toBeNull();
    expect(signal!.aborted).toBe(true);
    expect((signal!.reason as Error).message).toContain('timeout of 300 ms');
  });

  it('stops a function when the run is aborted, passing the abort on', async () => {
    const controller = new AbortController();
    let signal: AbortSignal | null = null;
    const running = run(
      {
        kind: 'module',
        module: (_input, ctx) => {
          signal = ctx.signal;
          setTimeout(() => controller.abort(new Error('shutting down')), 20);
          return new Promise(() => {});
        },
        timeoutMs: null,
      },
      { signal: controller.signal },
    );
    expect(failure((await running).result)).toMatchObject({ reason: 'aborted', message: 'stopped by cairn' });
    expect(signal!.aborted).toBe(true);
    expect((signal!.reason as Error).message).toBe('shutting down');
  });

  it('truncates a function output past outputBytes', async () => {
    const { result, logFile } = await run({ kind: 'module', module: () => 'y'.repeat(50), timeoutMs: null }, { outputBytes: 10 });
    expect(result).toEqual({ ok: true, output: '"yyyyyyyyy', truncated: true });
    expect(readLog(logFile)).toContain(`"${'y'.repeat(50)}"`);
  });

  it('imports a module file path and calls its default export', async () => {
    const cfg = config({ stages: { plan: { module: './module-default.mjs', timeout: '5s' } } });
    const stage = resolveStage(cfg, 'plan', identity());
    expect(stage).toEqual({ kind: 'module', module: fixture('module-default.mjs'), timeoutMs: 5000 });
    const dataDir = tempDir();
    const { result } = await run(stage, { dataDir });
    expect(success(result).output).toEqual({ echoed: 'add a button', stage: 'plan', attempt: 2, runId: 'run-abc', dataDir });
  });

  it('reports a module file without a default export as a clear error', async () => {
    const stage = resolveStage(config({ stages: { plan: { module: './module-no-default.mjs' } } }), 'plan', identity());
    const { result, logFile } = await run(stage);
    const failed = failure(result);
    expect(failed.reason).toBe('error');
    expect(failed.message).toContain(fixture('module-no-default.mjs'));
    expect(failed.message).toContain('no default export');
    expect(readLog(logFile)).toContain('no default export');
  });
});
