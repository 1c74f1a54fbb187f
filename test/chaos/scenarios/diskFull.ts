/**
 * The data directory sits on a 16 MiB tmpfs that `dd` fills while the daemon runs tasks, then frees.
 * The daemon must not crash on SQLITE_FULL / ENOSPC (it logs an error naming the file and keeps
 * retrying), must not record half a transition (SQLite's transactions; checked as version = transitions
 * per task and integrity_check), and must carry on by itself soon after the space comes back.
 * Needs root for `mount -t tmpfs` (as here and in CI); without it the scenario fails, never skips.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Workspace, type DaemonProcess } from '../../helpers/cairnProcess.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { readDb, sleep, waitAllTerminal, waitFor } from '../waitFor.js';

/** This scenario's heartbeat; the target is recovery within one. */
const HEARTBEAT_MS = 5000;

function sh(cmd: string, args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { code: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim() };
}

export const scenario: ChaosScenario = {
  name: 'disk full',
  fault: 'the data directory on a 16 MiB tmpfs, filled by dd while the daemon runs tasks, then freed',
  target: `crashes 0, corruption 0, half-recorded transitions 0, recovery after freeing < one heartbeat (${HEARTBEAT_MS / 1000} s here)`,
  async run({ quick, workDir, log }) {
    const ws = new Workspace(workDir);
    mkdirSync(ws.dataDir, { recursive: true });
    const mount = sh('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', ws.dataDir]);
    if (mount.code !== 0) {
      throw new Error(`disk full needs root to mount a 16 MiB tmpfs on ${ws.dataDir} (mount -t tmpfs exited ${mount.code}: ${mount.out}); run the chaos suite as root, as CI does`);
    }
    const failures: string[] = [];
    const fillFile = path.join(ws.dataDir, 'fill');
    const rounds = quick ? 1 : 5;
    let crashes = 0;
    let corruption = 0;
    let halfRecorded = 0;
    let reExecutions = 0;
    const recoveries: number[] = [];
    let daemon: DaemonProcess | null = null;
    try {
      ws.writeConfig(
        {
          approvals: { plan: 'auto', implementation: 'auto' },
          heartbeat: { cron: `*/${HEARTBEAT_MS / 1000} * * * * *`, staleAfter: '30s' },
          snapshots: { onStart: false },
        },
        { plan: { STAGE_SLEEP: '0.3' }, implement: { STAGE_SLEEP: '0.3' } },
      );
      daemon = ws.startDaemon();
      await daemon.waitForLog(/daemon started/);
      for (let round = 1; round <= rounds; round++) {
        for (let i = 0; i < (quick ? 6 : 8); i++) ws.submit(`disk full round ${round} task ${i + 1}`);
        await sleep(600); // stages under way
        const dd = sh('dd', ['if=/dev/zero', `of=${fillFile}`, 'bs=64k']);
        if (!/No space left/i.test(dd.out)) failures.push(`round ${round}: dd did not fill the disk: ${dd.out.slice(0, 200)}`);
        const fullAt = Date.now();
        log(`round ${round}: disk full (${dd.out.split('\n').at(-1)})`);
        // Stages finish and the daemon tries to record them, dispatch and heartbeat while nothing can be written.
        await sleep(quick ? 2500 : 8000);
        const fullErrors = daemon.lines.filter((l) => l.time >= fullAt && /full/i.test(String(l.msg)) && String(l.msg).includes(ws.dataDir));
        if (fullErrors.length === 0) failures.push(`round ${round}: no log line says the disk holding ${ws.dataDir} is full`);
        else log(`round ${round}: logged ${fullErrors.length} time(s), e.g. "${String(fullErrors[0].msg).slice(0, 200)}"`);
        if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) {
          crashes++;
          failures.push(`round ${round}: the daemon died while the disk was full (exit ${daemon.child.exitCode ?? daemon.child.signalCode}): ${daemon.stderr.slice(-800)}`);
          rmSync(fillFile, { force: true });
          daemon = ws.startDaemon();
          await daemon.waitForLog(/daemon started/);
          continue;
        }
        const lastBefore = readDb(ws.dbFile, (db) => db.prepare('SELECT coalesce(max(at), 0) FROM transitions').pluck().get() as number);
        rmSync(fillFile);
        const freedAt = Date.now();
        // Work for after the space comes back: what was in flight may all have fitted in the WAL's
        // existing space (SQLite reuses it from the start), so the daemon must show it writes again.
        for (let i = 0; i < 2; i++) ws.submit(`disk full round ${round} after freeing ${i + 1}`);
        // Recovered: the daemon commits a transition of its own again.
        const running = daemon;
        const at = await waitFor('a transition after the space came back', 60_000, () =>
          readDb(ws.dbFile, (db) => (db.prepare("SELECT min(at) FROM transitions WHERE at > ? AND at >= ? AND actor LIKE 'daemon%'").pluck().get(lastBefore, freedAt) as number | null) ?? undefined),
        ).catch((e: Error) => {
          // What the daemon said since the disk filled up is what tells why it did not carry on.
          const said = running.lines.filter((l) => l.time >= fullAt).map((l) => String(l.msg));
          throw new Error(`${e.message}; the daemon logged since the disk filled:\n${said.slice(-40).join('\n')}`);
        });
        recoveries.push(at - freedAt);
        log(`round ${round}: space freed; first transition ${at - freedAt} ms later`);
        await waitAllTerminal(ws.dbFile, 60_000);
      }
      await daemon.kill('SIGTERM');
      daemon = null;
      // Checked while the database is still on the tmpfs.
      const half = readDb(ws.dbFile, (db) =>
        db
          .prepare(`SELECT t.id, t.version, (SELECT count(*) FROM transitions r WHERE r.task_id = t.id) AS n,
                           (SELECT max(seq) FROM transitions r WHERE r.task_id = t.id) AS last FROM tasks t`)
          .all() as { id: number; version: number; n: number; last: number }[],
      ).filter((t) => t.version !== t.n || t.last !== t.n);
      halfRecorded = half.length;
      for (const t of half) failures.push(`task ${t.id}: version ${t.version} but ${t.n} transitions (last seq ${t.last}): half a transition recorded`);
      const inv = checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger'));
      corruption = inv.violations.filter((v) => v.startsWith('integrity_check')).length;
      reExecutions = inv.reExecutions;
      failures.push(...inv.violations);
    } finally {
      if (daemon) await daemon.kill('SIGTERM');
      rmSync(fillFile, { force: true });
      if (sh('umount', [ws.dataDir]).code !== 0) sh('umount', ['-l', ws.dataDir]);
    }
    const slowest = Math.max(...recoveries);
    if (slowest >= HEARTBEAT_MS) failures.push(`recovery took ${slowest} ms after the space came back, over one heartbeat (${HEARTBEAT_MS} ms)`);
    return {
      iterations: rounds,
      figure: `crashes ${crashes}, corruption ${corruption}, half-recorded ${halfRecorded}, recovered ${recoveries.join('/')} ms after freeing; re-executions ${reExecutions}`,
      held: failures.length === 0,
      failures,
    };
  },
};
