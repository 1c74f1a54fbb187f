/**
 * Files created under umask 000 still end up private: the data directory and its subdirectories
 * 0700, the database, its -wal and -shm, snapshots and stage logs 0600.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { CAIRN_BIN, DaemonProcess, Workspace } from '../../helpers/cairnProcess.js';
import type { ChaosScenario } from '../scenario.js';

export const scenario: ChaosScenario = {
  name: 'file modes',
  fault: 'daemon, CLI and stages run under umask 000',
  target: 'every file 0600, every directory 0700',
  async run({ workDir, log }) {
    const ws = new Workspace(workDir);
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' } });
    // The daemon inherits umask 000 from a shell that sets it, as a careless service unit would.
    const daemon = new DaemonProcess(
      spawn('/bin/sh', ['-c', 'umask 000 && exec "$0" "$@"', process.execPath, CAIRN_BIN, 'start'], {
        cwd: workDir,
        env: { ...process.env, CAIRN_LOG_FORMAT: 'json' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    try {
      await daemon.waitForLog(/started|ready|listening|dispatch/i);
      const id = ws.submit('file modes');
      const deadline = Date.now() + 20_000;
      while (ws.show(id).status !== 'completed') {
        if (Date.now() > deadline) throw new Error(`task ${id} did not complete: ${JSON.stringify(ws.show(id))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const snap = ws.cli(['snapshot']);
      if (snap.code !== 0) throw new Error(`cairn snapshot exited ${snap.code}: ${snap.stderr}`);
    } finally {
      await daemon.kill('SIGTERM');
    }

    const failures: string[] = [];
    let checked = 0;
    const walk = (p: string) => {
      const st = statSync(p);
      const mode = st.mode & 0o777;
      const want = st.isDirectory() ? 0o700 : 0o600;
      checked++;
      if (mode !== want) failures.push(`${path.relative(workDir, p)} is ${mode.toString(8).padStart(4, '0')}, want ${want.toString(8).padStart(4, '0')}`);
      if (st.isDirectory()) for (const e of readdirSync(p)) walk(path.join(p, e));
    };
    walk(ws.dataDir);
    log(`checked ${checked} files and directories under ${ws.dataDir}`);
    return { iterations: 1, figure: `${failures.length} of ${checked} with a wider mode`, held: failures.length === 0, failures };
  },
};
