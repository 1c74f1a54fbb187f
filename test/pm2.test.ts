/**
 * The daemon under a real pm2 (the devDependency), run from the shipped ecosystem.config.cjs with only
 * the paths changed: its own PM2_HOME, so no pm2 of the user's is touched, and its God daemon is
 * killed after the file whatever happened. What the shipped settings promise, seen from pm2's side:
 * a config error is not retried (stop_exit_codes), a kill -9 is restarted and the new daemon resumes
 * the stage that was cut off, `pm2 stop` is a graceful stop, and the logs pm2 writes are private.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigFile } from '../src/config.js';
import { CAIRN_BIN, isAlive, Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const root = path.resolve(path.dirname(CAIRN_BIN), '..', '..');
const require = createRequire(import.meta.url);
const PM2_BIN = require.resolve('pm2/bin/pm2');
const SHIPPED_APP = (require(path.join(root, 'ecosystem.config.cjs')) as { apps: Record<string, unknown>[] }).apps[0];
const run = promisify(execFile);

let pm2Home = '';

/** Runs the pm2 CLI against the test's PM2_HOME. */
async function pm2(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [PM2_BIN, ...args], { env: { ...process.env, PM2_HOME: pm2Home }, timeout: 20_000 });
  return stdout;
}

interface Pm2Process {
  name: string;
  pid: number;
  status: string;
  restarts: number;
  execMode: string;
  exitCode: number | null;
}

/** `pm2 jlist`, the app named `name` (or undefined). */
async function pm2Process(name: string): Promise<Pm2Process | undefined> {
  // jlist prints its JSON array on one line; pm2 may print notices around it.
  const json = (await pm2('jlist')).split('\n').find((line) => line.startsWith('['));
  const app = (JSON.parse(json ?? '[]') as any[]).find((p) => p.name === name);
  return app && { name, pid: app.pid, status: app.pm2_env.status, restarts: app.pm2_env.restart_time, execMode: app.pm2_env.exec_mode, exitCode: app.pm2_env.exit_code ?? null };
}

/** Writes `ws.dir`/ecosystem.config.cjs: the shipped app, run from the workspace with the built cairn and the workspace's config. */
function writeEcosystem(ws: Workspace, name: string, overrides: Record<string, unknown> = {}): string {
  const app = { ...SHIPPED_APP, name, cwd: ws.dir, script: CAIRN_BIN, args: 'start --config cairn.config.json', ...overrides };
  // pm2 reads a file as a process file only by its name (ecosystem*.config.cjs); another name it runs as a script.
  const file = path.join(ws.dir, 'ecosystem.config.cjs');
  writeFileSync(file, `module.exports = ${JSON.stringify({ apps: [app] }, null, 2)};\n`);
  return file;
}

const mode = (file: string) => statSync(file).mode & 0o777;

/** The pm2 log files of the shipped ecosystem file, relative to its cwd: the data directory's logs. */
const daemonLogs = (ws: Workspace) => ({
  dir: path.join(ws.dataDir, 'logs'),
  out: path.join(ws.dataDir, 'logs', 'daemon.out.log'),
  err: path.join(ws.dataDir, 'logs', 'daemon.err.log'),
});

/** The newest session `cairn status` shows, or null while the store cannot be read yet. */
function statusSession(ws: Workspace): any {
  const r = ws.cli(['status', '--json']);
  return r.code === 0 ? JSON.parse(r.stdout).session : null;
}

const readJsonLines = (file: string): any[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));

beforeAll(async () => {
  pm2Home = mkdtempSync(path.join(os.tmpdir(), 'cairn-pm2-home-'));
  await pm2('ping');
});

afterAll(async () => {
  const pidFile = path.join(pm2Home, 'pm2.pid');
  const godPid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
  try {
    await pm2('kill');
  } finally {
    // pm2 kill waits for its God daemon; should it not have ended it, end it by its pid.
    if (godPid && isAlive(godPid)) process.kill(godPid, 'SIGKILL');
    rmSync(pm2Home, { recursive: true, force: true });
  }
});

describe('under a real pm2, from the shipped ecosystem file', () => {
  for (const execMode of ['fork', 'cluster'] as const) {
    it(`a config error (a mistyped key) is not retried (${execMode} mode): pm2 lets it exit 2 once and does not restart it`, async () => {
      const ws = new Workspace(tempDir());
      ws.writeConfig({ concurency: 2 } as unknown as ConfigFile);
      const name = `cairn-config-error-${execMode}`;
      await pm2('start', writeEcosystem(ws, name, { exec_mode: execMode }));
      // Within seconds: a start that hung instead of exiting (as under pm2's IPC channel before) never gets here.
      // pm2 clears an app's pid when it decides not to restart it (stop_exit_codes, autorestart off,
      // too many restarts); one it will restart keeps its dead pid until then. With a restart delay
      // set (the shipped exp_backoff_restart_delay), pm2 7 shows such an app `waiting restart`
      // rather than `stopped`: it sets that status before it looks at stop_exit_codes.
      const exited = await waitFor(async () => {
        const p = await pm2Process(name);
        return p && p.exitCode !== null && p.pid === 0 && p;
      }, { timeoutMs: 10_000, intervalMs: 100, what: `pm2 to see ${name} exit and not restart it` });
      expect(exited).toMatchObject({ exitCode: 2, restarts: 0, execMode: `${execMode}_mode` });
      expect(['stopped', 'errored', 'waiting restart']).toContain(exited.status);
      const logs = daemonLogs(ws);
      expect(readFileSync(logs.err, 'utf8')).toMatch(/concurency/);
      // Tightened before the config was read, so the error it logs is not world-readable either.
      expect(mode(logs.err)).toBe(0o600);
      expect(mode(logs.out)).toBe(0o600);
      await pm2('delete', name);
    });
  }

  it('kill -9 is restarted and the new daemon resumes the cut-off stage; pm2 stop is graceful; pm2 logs are private', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'manual' } }, { implement: { STAGE_SLEEP: '30', SLEEP_ATTEMPTS: '1' } });
    const name = 'cairn-resume';
    await pm2('start', writeEcosystem(ws, name));
    const first = await waitFor(async () => {
      const p = await pm2Process(name);
      const session = statusSession(ws);
      return p?.status === 'online' && session?.status === 'active' && session.pid === p.pid && p;
    }, { timeoutMs: 15_000, intervalMs: 100, what: 'the daemon started by pm2 to have an active session' });

    const logs = daemonLogs(ws);
    expect([mode(logs.dir), mode(logs.out), mode(logs.err)]).toEqual([0o700, 0o600, 0o600]);

    const id = ws.submit('survive a kill -9 under pm2');
    const cutOff = await waitFor(() => ws.ledger().find((l) => l.stage === 'implement'), { timeoutMs: 15_000, what: 'implement attempt 1 started' });
    process.kill(first.pid, 'SIGKILL');

    const second = await waitFor(async () => {
      const p = await pm2Process(name);
      return p?.status === 'online' && p.pid !== first.pid && p;
    }, { timeoutMs: 15_000, intervalMs: 100, what: 'pm2 to restart the killed daemon' });
    expect(second.restarts).toBe(1);
    await waitFor(() => ws.show(id).state === 'implementation_awaiting_approval', { timeoutMs: 15_000, what: 'the resumed task at its gate' });
    expect(ws.ledger().filter((l) => l.stage === 'implement').map((l) => l.attempt)).toEqual([1, 2]);
    expect(ws.show(id).runs.map((r: any) => [r.stage, r.attempt, r.outcome])).toEqual([
      ['plan', 1, 'succeeded'],
      ['implement', 1, 'interrupted'],
      ['implement', 2, 'succeeded'],
    ]);
    // The cut-off stage outlived the daemon in its own process group; the new daemon ended it.
    await waitFor(() => !isAlive(cutOff.pid), { what: `the cut-off stage (pid ${cutOff.pid}) to be ended` });

    await pm2('stop', name);
    await waitFor(async () => (await pm2Process(name))?.status === 'stopped', { intervalMs: 100, what: 'pm2 to show the daemon stopped' });
    expect(await pm2Process(name)).toMatchObject({ status: 'stopped', restarts: 1 });
    expect(statusSession(ws)).toMatchObject({ pid: second.pid, status: 'stopped' });
    // pm2 stops with SIGINT; the daemon drains and says so, with no warning on the way.
    const secondLines = readJsonLines(logs.out).filter((l) => l.pid === second.pid);
    const stopping = secondLines.findIndex((l) => /received SIGINT; stopping/.test(l.msg));
    expect(stopping).toBeGreaterThan(-1);
    expect(secondLines.slice(stopping).map((l) => [l.level, l.msg])).toEqual([
      [30, 'received SIGINT; stopping'],
      [30, expect.stringMatching(/^cairn daemon stopped/)],
    ]);
    expect([mode(logs.dir), mode(logs.out), mode(logs.err)]).toEqual([0o700, 0o600, 0o600]);
    await pm2('delete', name);
  });
});
