/**
 * `cairn logs`: the real binary reads the logs real stage runs wrote. --follow shows a running stage's
 * lines as the stage prints them (the stage prints its next line only when the test says so) and ends
 * when the store records the run as ended, whether the daemon is another process on SQLite or on
 * PostgreSQL; the latest run, --stage and --attempt pick the right file; every "no log here" exits 1
 * naming what to do; `show` prints each run's log path.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CAIRN_BIN, Workspace } from './helpers/cairnProcess.js';
import { Machine } from './helpers/pgDaemons.js';
import { dropTestSchemas, newTestSchema, schemaUrl } from './helpers/postgres.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const STEPPED = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'stages', 'stepped.sh');

/** A running `cairn logs … --follow`: its output so far, and its exit. */
class Follower {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [CAIRN_BIN, 'logs', ...args, '--follow'], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  get isRunning(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  waitForOutput(text: string): Promise<true> {
    return waitFor(() => this.stdout.includes(text) || (!this.isRunning && this.fail(text)), { timeoutMs: 15_000, what: `"${text}" from cairn logs --follow` });
  }

  private fail(text: string): never {
    throw new Error(`cairn logs --follow exited before printing "${text}"; stdout: ${this.stdout}\nstderr: ${this.stderr}`);
  }

  kill() {
    if (this.isRunning) this.child.kill('SIGKILL');
  }
}

/** A config whose plan stage is stepped.sh, told to wait for go files in `stepDir`. */
function steppedConfig(ws: Workspace, stepDir: string) {
  ws.writeConfig({ approvals: { plan: 'manual', implementation: 'manual' }, stages: { plan: { run: [STEPPED], env: { STEP_DIR: stepDir } } } });
}

/**
 * Follows task 1's plan run from before its log exists to its end: each step appears while the stage
 * still waits to print the next one, and the follower ends on its own once the run is recorded.
 */
async function followSteppedPlan(ws: Workspace, stepDir: string, started: () => Promise<unknown>, env: NodeJS.ProcessEnv = {}) {
  await started();
  const follower = new Follower(ws.dir, ['1'], env);
  try {
    await follower.waitForOutput('step 1 of 3\n');
    // The stage is blocked until go-2 exists: what the follower shows, it showed as the stage wrote it.
    expect(follower.stdout).not.toContain('step 2');
    expect(follower.isRunning).toBe(true);
    // Without --follow: what there is so far, and a note that more may come.
    const sofar = ws.cli(['logs', '1'], env);
    expect(sofar).toMatchObject({ code: 0, stdout: 'step 1 of 3\n' });
    expect(sofar.stderr).toMatch(/^cairn: task 1's plan attempt 1 has no result yet .*`cairn logs 1 --follow` prints the rest as it comes\n$/);
    writeFileSync(path.join(stepDir, 'go-2'), '');
    await follower.waitForOutput('step 2 of 3\n');
    expect(follower.isRunning).toBe(true);
    writeFileSync(path.join(stepDir, 'go-3'), '');
    expect(await follower.exited, follower.stderr).toBe(0);
    const logFile = path.join(ws.dataDir, 'logs', '1', 'plan-1.log');
    // Everything the stage wrote, its output line included, once and in order.
    expect(follower.stdout).toBe(readFileSync(logFile, 'utf8'));
    expect(follower.stdout).toBe('step 1 of 3\nstep 2 of 3\nstep 3 of 3\n{"steps":3}\n');
    expect(follower.stderr).toBe("cairn: task 1's plan attempt 1 ended: succeeded (exit 0)\n");
  } finally {
    follower.kill();
  }
}

describe('cairn logs (SQLite)', () => {
  it('--follow prints a running stage\'s lines as they come and exits 0 when the daemon records the run', async () => {
    const ws = new Workspace(tempDir());
    const stepDir = tempDir('cairn-steps-');
    steppedConfig(ws, stepDir);
    expect(ws.submit('follow me')).toBe(1);
    const daemon = ws.startDaemon();
    try {
      await followSteppedPlan(ws, stepDir, () => daemon.waitForLog(/task 1: plan attempt 1 started/));
      expect(ws.show(1).state).toBe('plan_awaiting_approval');
    } finally {
      expect(await daemon.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    }
  });

  it('--follow ends, saying so, when the daemon running the stage is killed', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({}, { plan: { STAGE_SLEEP: '30' } });
    ws.submit('interrupted');
    const daemon = ws.startDaemon();
    await daemon.waitForLog(/task 1: plan attempt 1 started/);
    const follower = new Follower(ws.dir, ['1']);
    try {
      await follower.waitForOutput('sleeping 30s\n');
      await daemon.kill('SIGKILL');
      expect(await follower.exited, follower.stderr).toBe(0);
      expect(follower.stderr).toMatch(/^cairn: task 1's plan attempt 1 stopped without a result: session \S+, the daemon running it, is gone; the next `cairn start` resumes it as a new attempt\n$/);
    } finally {
      follower.kill();
      // The stage's process group outlives its killed daemon; end it rather than leave a sleep behind.
      for (const { pid } of ws.ledger()) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  it('picks the latest run, --stage\'s latest attempt or --attempt; show prints each log\'s path', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'manual', implementation: 'manual' } }, { plan: { FAIL_ATTEMPTS: '1' } });
    // plan attempt 1 fails, attempt 2 succeeds; after approval implement attempt 1 runs.
    expect(ws.cli(['run', 'pick a log']).code).toBe(0);
    expect(ws.cli(['approve', '1']).code).toBe(0);
    expect(ws.cli(['run', '--resume', '1']).code).toBe(0);
    expect(ws.show(1).state).toBe('implementation_awaiting_approval');
    const logFile = (stage: string, attempt: number) => path.join(ws.dataDir, 'logs', '1', `${stage}-${attempt}.log`);

    const latest = ws.cli(['logs', '1']);
    expect(latest.code, latest.stderr).toBe(0);
    expect(latest.stdout).toBe('{"stage":"implement","attempt":1}\n');
    expect(ws.cli(['logs', '1', '--stage', 'plan']).stdout).toBe('{"stage":"plan","attempt":2}\n');
    expect(ws.cli(['logs', '1', '--stage', 'plan', '--attempt', '1']).stdout).toBe('failing on purpose at attempt 1\n');
    expect(ws.cli(['logs', '1', '--attempt', '1']).stdout).toBe('{"stage":"implement","attempt":1}\n');
    // A finished run's log with --follow is printed whole, and the follower ends at once.
    const followed = ws.cli(['logs', '1', '--stage', 'plan', '--attempt', '1', '--follow']);
    expect(followed).toMatchObject({ code: 0, stdout: 'failing on purpose at attempt 1\n' });
    expect(followed.stderr).toBe("cairn: task 1's plan attempt 1 ended: failed (exit 3)\n");
    expect(ws.json(['logs', '1', '--stage', 'plan', '--attempt', '1'])).toMatchObject({
      task: 1,
      stage: 'plan',
      attempt: 1,
      outcome: 'failed',
      path: logFile('plan', 1),
      log: 'failing on purpose at attempt 1\n',
    });

    // commander (any spelling the fast path does not take, e.g. --stage=plan) gives the same.
    const viaCommander = spawnSync(process.execPath, [path.join(path.dirname(CAIRN_BIN), 'cli', 'main.js'), 'logs', '1', '--stage=plan', '--attempt=1'], { cwd: ws.dir, encoding: 'utf8' });
    expect(viaCommander.stdout).toBe('failing on purpose at attempt 1\n');
    expect(viaCommander.status).toBe(0);

    // show names each run's log, and each is there.
    const shown = ws.cli(['show', '1']);
    expect(shown.stdout).toContain(`plan attempt 1: failed (exit 3)  log ${logFile('plan', 1)}`);
    expect(shown.stdout).toContain(`plan attempt 2: succeeded (exit 0)  log ${logFile('plan', 2)}`);
    expect(shown.stdout).toContain(`implement attempt 1: succeeded (exit 0)  log ${logFile('implement', 1)}`);
    const runs = ws.show(1).runs as { stage: string; attempt: number; log: string }[];
    expect(runs.map((r) => [r.stage, r.attempt, r.log])).toEqual([
      ['plan', 1, logFile('plan', 1)],
      ['plan', 2, logFile('plan', 2)],
      ['implement', 1, logFile('implement', 1)],
    ]);
    for (const r of runs) expect(existsSync(r.log), r.log).toBe(true);
  });

  it('says what is wrong and what to do when there is no log to show', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'manual', implementation: 'manual' } });
    expect(ws.cli(['run', 'one plan']).code).toBe(0);
    expect(ws.submit('never run')).toBe(2);
    const cases: [string[], number, RegExp][] = [
      [['logs', '9'], 1, /^cairn: task 9 does not exist; `cairn list` shows the tasks there are\n$/],
      [['logs', '2'], 1, /^cairn: task 2 has no stage runs yet \(it is pending\), so there is no log; .*`cairn start` starts one\n$/],
      [['logs', '1', '--stage', 'review'], 1, /^cairn: task 1 has no review run yet \(it ran: plan 1\); `cairn logs 1 --stage plan` shows the last stage that ran\n$/],
      [['logs', '1', '--stage', 'plan', '--attempt', '4'], 1, /^cairn: task 1's plan stage has no attempt 4; it has attempt 1\n$/],
      [['logs', '1', '--stage', 'plann'], 2, /^cairn: --stage plann is not a stage; use one of plan, implement, review, verify\n$/],
      [['logs', '1', '--attempt', 'x'], 2, /^cairn: --attempt needs a positive whole number, got "x"\n$/],
      [['logs', '1', '--follow', '--json'], 2, /^cairn: --follow streams the log as text; drop --json/],
    ];
    for (const [args, code, message] of cases) {
      const r = ws.cli(args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stderr, args.join(' ')).toMatch(message);
      // With --json the error is on stdout too, as JSON.
      if (args.includes('--json')) expect(JSON.parse(r.stdout).error.code).toBe('USAGE');
      else expect(r.stdout, args.join(' ')).toBe('');
    }
    const json = ws.cli(['logs', '2', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout).error.code).toBe('STAGE_LOG');

    const logFile = path.join(ws.dataDir, 'logs', '1', 'plan-1.log');
    rmSync(logFile);
    for (const args of [['logs', '1'], ['logs', '1', '--follow']]) {
      const missing = ws.cli(args);
      expect(missing.code, args.join(' ')).toBe(1);
      expect(missing.stderr).toBe(
        `cairn: task 1's plan attempt 1 has no log at ${logFile}: it was removed, or this is not the data directory the daemon used; pass the daemon's --data-dir or --config\n`,
      );
    }
  });
});

describe('cairn logs (PostgreSQL)', () => {
  afterAll(dropTestSchemas);

  it('--follow ends when the run is recorded in PostgreSQL; another host is told where the log is', async () => {
    const url = schemaUrl(await newTestSchema('logs'));
    const here = new Machine(url, 'box-a');
    const elsewhere = new Machine(url, 'box-b');
    const stepDir = tempDir('cairn-steps-');
    steppedConfig(here.ws, stepDir);
    steppedConfig(elsewhere.ws, stepDir);
    expect(here.json<{ id: number }>(['submit', 'follow me on postgres']).id).toBe(1);
    try {
      await followSteppedPlan(here.ws, stepDir, async () => (await here.start()).waitForLog(/task 1: plan attempt 1 started/), here.env);
      const r = elsewhere.cli(['logs', '1']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(`^cairn: task 1's plan attempt 1 ran on host box-a \\(session ${here.sessionId}\\), and its log stays on that host: run \`cairn logs\` there, or read \\S+plan-1\\.log on box-a\\n$`),
      );
      expect(here.cli(['logs', '1']).stdout).toBe('step 1 of 3\nstep 2 of 3\nstep 3 of 3\n{"steps":3}\n');
    } finally {
      await here.stop();
    }
  });
});
