/**
 * A CLI write wakes a running daemon at once through the doorbell file next to the database
 * (src/store/doorbell.ts), instead of waiting for the daemon's safety poll. Every daemon here polls
 * once a minute and beats hourly, so only the doorbell can make a stage start within a second; and a
 * daemon that is frozen, killed, or sent garbage must never make a CLI write hang or fail.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CAIRN_BIN, isAlive, Workspace, type DaemonProcess } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

/** Slow enough that a stage starting within a second was woken, not found by a poll or a heartbeat. */
const SLOW = { CAIRN_POLL_MS: '60000' };
const HOURLY = { heartbeat: { cron: '0 0 * * * *', staleAfter: '5m' } };
/** How long a CLI write may take on this shared 2-core machine; a write that waited on a daemon would hang. */
const PROMPT_MS = 5_000;

function workspace(config: object = {}, stageEnv: Parameters<Workspace['writeConfig']>[1] = {}): Workspace {
  const ws = new Workspace(tempDir());
  ws.writeConfig({ ...HOURLY, ...config }, stageEnv);
  return ws;
}

const LIBRARY = pathToFileURL(path.join(path.dirname(CAIRN_BIN), 'index.js')).href;
const doorbell = (ws: Workspace) => `${ws.dbFile}.wake`;

/** Waits for the stage program's own ledger line for this task and stage; resolves with ms waited. */
async function stageStarted(ws: Workspace, task: number, stage: string, timeoutMs: number): Promise<number> {
  const from = performance.now();
  await waitFor(() => ws.ledger().some((l) => l.task === task && l.stage === stage), { timeoutMs, intervalMs: 5, what: `task ${task}'s ${stage} stage to start` });
  return performance.now() - from;
}

/** Runs a CLI write and checks it succeeded promptly; returns its stdout. */
function promptWrite(ws: Workspace, args: string[]): string {
  const from = performance.now();
  const r = ws.cli(args);
  const tookMs = performance.now() - from;
  expect(r.code, r.stderr).toBe(0);
  expect(tookMs).toBeLessThan(PROMPT_MS);
  return r.stdout;
}

async function started(ws: Workspace): Promise<DaemonProcess> {
  const daemon = ws.startDaemon([], SLOW);
  await daemon.waitForLog(/cairn daemon started/);
  return daemon;
}

describe('a CLI write wakes the daemon without waiting for its poll', () => {
  it('starts the plan stage within 1 s of `cairn submit`, and implement within 1 s of `cairn approve`', async () => {
    const ws = workspace();
    const daemon = await started(ws);
    try {
      // Two rounds: the second shows the doorbell still rings after the daemon has answered one.
      for (let round = 0; round < 2; round++) {
        const id = Number(promptWrite(ws, ['submit', `task ${round}`]).trim());
        expect(await stageStarted(ws, id, 'plan', 1_000)).toBeLessThan(1_000);
        await waitFor(() => ws.show(id).state === 'plan_awaiting_approval', { what: `task ${id} awaiting plan approval` });
        promptWrite(ws, ['approve', String(id)]);
        expect(await stageStarted(ws, id, 'implement', 1_000)).toBeLessThan(1_000);
      }
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('a submit through the library, in a process of its own, wakes it too', async () => {
    const ws = workspace();
    const daemon = await started(ws);
    try {
      const script = `const { openCairn } = await import(${JSON.stringify(LIBRARY)});
        const cairn = await openCairn({ dataDir: process.argv[1] });
        const task = await cairn.submit({ request: 'from a script' });
        await cairn.stop();
        console.log(task.id);`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, ws.dataDir], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(await stageStarted(ws, Number(r.stdout.trim()), 'plan', 1_000)).toBeLessThan(1_000);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('makes the doorbell a private file (0600), also when it was left more open', async () => {
    const ws = workspace();
    let daemon = await started(ws);
    expect(statSync(doorbell(ws)).mode & 0o777).toBe(0o600);
    await daemon.kill('SIGTERM');
    chmodSync(doorbell(ws), 0o644);
    daemon = await started(ws);
    try {
      expect(statSync(doorbell(ws)).mode & 0o777).toBe(0o600);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });
});

describe("the daemon's own changes start the next stage without waiting for the poll", () => {
  it('a stage whose backoff ends runs again at once', async () => {
    const ws = workspace({ approvals: { plan: 'auto', implementation: 'auto' }, limits: { retryBackoff: '200ms' } }, { plan: { FAIL_ATTEMPTS: '1' } });
    const daemon = await started(ws);
    try {
      const id = ws.submit('fails once');
      await waitFor(() => ws.ledger().some((l) => l.task === id && l.stage === 'plan' && l.attempt === 1), { intervalMs: 5, what: 'plan attempt 1' });
      await waitFor(() => ws.ledger().some((l) => l.task === id && l.stage === 'plan' && l.attempt === 2), {
        timeoutMs: 2_000,
        intervalMs: 5,
        what: 'plan attempt 2 after the 200 ms backoff',
      });
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('a task waiting on a dependency starts as soon as the dependency completes', async () => {
    const ws = workspace({ approvals: { plan: 'auto', implementation: 'auto' } });
    const daemon = await started(ws);
    try {
      const first = ws.submit('first');
      const second = ws.submit('second', ['--depends-on', String(first)]);
      await waitFor(() => ws.ledger().some((l) => l.task === first && l.stage === 'verify'), { intervalMs: 5, what: `task ${first}'s verify` });
      // verify's line is written as it starts; the dependent starts within a second of it ending.
      await stageStarted(ws, second, 'plan', 2_000);
      expect(ws.show(first).state).toBe('completed');
    } finally {
      await daemon.kill('SIGTERM');
    }
  });
});

describe('a daemon that cannot answer never holds up a CLI write', () => {
  it('a frozen daemon (SIGSTOP): submit and approve return at once with exit 0, and both run once it continues', async () => {
    const ws = workspace();
    const daemon = await started(ws);
    try {
      const gated = Number(promptWrite(ws, ['submit', 'reaches its gate first']).trim());
      await waitFor(() => ws.show(gated).state === 'plan_awaiting_approval', { what: `task ${gated} awaiting plan approval` });
      process.kill(daemon.pid, 'SIGSTOP');
      let fresh: number;
      try {
        promptWrite(ws, ['approve', String(gated)]);
        fresh = Number(promptWrite(ws, ['submit', 'while frozen']).trim());
      } finally {
        process.kill(daemon.pid, 'SIGCONT');
      }
      // The rings were heard while frozen (inotify keeps them): no poll or heartbeat is due for a minute.
      await stageStarted(ws, gated, 'implement', 1_000);
      await stageStarted(ws, fresh, 'plan', 1_000);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('a killed daemon (SIGKILL, doorbell left behind): submit returns at once with exit 0, and the next start runs it', async () => {
    const ws = workspace();
    const first = await started(ws);
    await first.kill('SIGKILL');
    expect(existsSync(doorbell(ws))).toBe(true);
    const id = Number(promptWrite(ws, ['submit', 'after the crash']).trim());
    const second = await started(ws);
    try {
      await stageStarted(ws, id, 'plan', 5_000);
    } finally {
      await second.kill('SIGTERM');
    }
  });

  it('a fifo or a symlink in the doorbell\'s place: submit neither blocks nor writes through; the next start puts a private file back', async () => {
    const ws = workspace();
    const first = await started(ws);
    await first.kill('SIGKILL');
    unlinkSync(doorbell(ws));
    expect(spawnSync('mkfifo', ['-m', '0600', doorbell(ws)]).status).toBe(0);
    const id = Number(promptWrite(ws, ['submit', 'past a fifo']).trim());

    unlinkSync(doorbell(ws));
    const victim = `${ws.dir}/victim.txt`;
    writeFileSync(victim, 'untouched');
    spawnSync('ln', ['-s', victim, doorbell(ws)]);
    promptWrite(ws, ['submit', 'past a symlink']);
    expect(spawnSync('cat', [victim], { encoding: 'utf8' }).stdout).toBe('untouched');

    const second = await started(ws);
    try {
      expect(statSync(doorbell(ws)).isFile()).toBe(true);
      expect(statSync(doorbell(ws)).mode & 0o777).toBe(0o600);
      await stageStarted(ws, id, 'plan', 5_000);
    } finally {
      await second.kill('SIGTERM');
    }
  });
});

describe("a stranger's writes to the doorbell", () => {
  it('wrong bytes, 1 MiB and 1,000 writes leave the daemon running, and a submit still wakes it within 1 s', async () => {
    const ws = workspace();
    const daemon = await started(ws);
    try {
      writeFileSync(doorbell(ws), Buffer.from([0xff, 0x00, 0xfe, 0x0a]));
      appendFileSync(doorbell(ws), Buffer.alloc(1024 * 1024, 0x41));
      for (let i = 0; i < 1_000; i++) writeFileSync(doorbell(ws), `ring ${i}\n`);
      // The doorbell removed outright: the daemon makes a fresh one and keeps watching.
      unlinkSync(doorbell(ws));
      await waitFor(() => existsSync(doorbell(ws)), { what: 'the daemon to put the doorbell back' });
      expect(statSync(doorbell(ws)).mode & 0o777).toBe(0o600);

      expect(isAlive(daemon.pid)).toBe(true);
      const id = Number(promptWrite(ws, ['submit', 'after the garbage']).trim());
      expect(await stageStarted(ws, id, 'plan', 1_000)).toBeLessThan(1_000);
      expect(daemon.lines.filter((l) => l.level >= 50)).toEqual([]);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });
});
