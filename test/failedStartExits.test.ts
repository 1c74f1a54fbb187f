/**
 * A `cairn start` that cannot start must end with its exit code even when its parent holds an IPC
 * channel, as pm2 does: before, it set process.exitCode and waited for an event loop the channel kept
 * alive, so pm2 showed it online forever and never applied stop_exit_codes or counted a restart.
 */
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CAIRN_BIN, Workspace } from './helpers/cairnProcess.js';
import { tempDir } from './helpers/tmp.js';

const CONTAINER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'service', 'ipcContainer.cjs');

/** Runs `cairn ARGS` under a fork() parent holding IPC; how it exited and how long after its first stderr or log line. */
function startUnderIpc(cwd: string, args: string[], onOutput?: (text: string, child: ReturnType<typeof fork>) => void) {
  const child = fork(CONTAINER, [CAIRN_BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: { ...process.env, CAIRN_LOG_FORMAT: 'json' } });
  let output = '';
  let firstOutputAt = 0;
  const seen = (chunk: Buffer) => {
    firstOutputAt ||= Date.now();
    output += chunk.toString();
    onOutput?.(output, child);
  };
  child.stdout!.on('data', seen);
  child.stderr!.on('data', seen);
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  return new Promise<{ code: number | null; afterOutputMs: number; output: string }>((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, afterOutputMs: Date.now() - firstOutputAt, output });
    }),
  );
}

describe('a failed start under a parent holding an IPC channel (pm2 fork mode)', () => {
  it('exits 2 within a second when no stage is configured', async () => {
    const r = await startUnderIpc(tempDir(), ['start']);
    expect(r.output).toMatch(/no program is configured for stages plan, implement, review, verify/);
    expect(r.code).toBe(2);
    expect(r.afterOutputMs).toBeLessThan(1000);
  });

  it('exits 2 within a second on a config key it does not know', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ bogus: 1 } as never);
    const r = await startUnderIpc(ws.dir, ['start']);
    expect(r.output).toMatch(/bogus: unknown key/);
    expect(r.code).toBe(2);
    expect(r.afterOutputMs).toBeLessThan(1000);
  });

  it('exits 1 within a second on a damaged database', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    mkdirSync(ws.dataDir, { recursive: true });
    writeFileSync(ws.dbFile, Buffer.alloc(8192, 0x5a));
    const r = await startUnderIpc(ws.dir, ['start']);
    expect(r.output).toMatch(/is not a SQLite database/);
    expect(r.code).toBe(1);
    expect(r.afterOutputMs).toBeLessThan(1000);
  });

  it('a graceful stop exits 0 within a second of stopping', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    let signalled = false;
    let stoppedAt = 0;
    const r = await startUnderIpc(ws.dir, ['start'], (output, child) => {
      if (!signalled && output.includes('cairn daemon started')) {
        signalled = true;
        child.kill('SIGTERM');
      }
      if (!stoppedAt && output.includes('cairn daemon stopped')) stoppedAt = Date.now();
    });
    expect(r.code).toBe(0);
    expect(stoppedAt).toBeGreaterThan(0);
    // Before, the channel held it until start's 2 s fallback timer.
    expect(Date.now() - stoppedAt).toBeLessThan(1000);
  });
});
