/**
 * A stage whose program leaves `sleep 999 &` grandchildren (and, on one task, a `setsid` one that
 * escapes the process group) is running when the daemon is killed with SIGKILL. Stages run detached,
 * so they outlive it. The restarted daemon must end the dead predecessor's process groups (recorded in
 * stage_runs.pgid) before it runs their stages again: no descendant left alive, never two copies of one
 * stage at once, no zombies left by cairn.
 */
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { STAGE_SCRIPT, Workspace, type DaemonProcess } from '../../helpers/cairnProcess.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { readDb, sleep, waitAllTerminal, waitFor } from '../waitFor.js';

/** Attempt 1 leaves grandchildren and waits; a later attempt first notes any process of attempt 1 still alive. */
function orphanScript(recordDir: string): string {
  return `#!/usr/bin/env bash
if [ "$CAIRN_ATTEMPT" -le 1 ]; then
  printf '%s %s %s %s %s\\n' "$CAIRN_RUN_ID" "$CAIRN_TASK_ID" "$CAIRN_STAGE" "$CAIRN_ATTEMPT" "$$" >> ${JSON.stringify(path.join(recordDir, 'ledger'))}
  sleep 999 &
  sleep 999 &
  if [ "$CAIRN_TASK_ID" = 1 ] && [ -n "\${ESCAPE:-}" ]; then setsid sleep 999 & fi
  wait
  exit 0
fi
old=${JSON.stringify(recordDir)}/old-pids-$CAIRN_TASK_ID
if [ -f "$old" ]; then
  while read -r pid; do
    if [ -r /proc/$pid/status ] && ! grep -q '^State:.*Z' /proc/$pid/status; then echo "$CAIRN_TASK_ID $pid" >> ${JSON.stringify(path.join(recordDir, 'overlaps'))}; fi
  done < "$old"
fi
exec ${JSON.stringify(STAGE_SCRIPT)}
`;
}

interface Proc {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  state: string;
}

/** Every process on this machine, from /proc/<pid>/stat. */
function processes(): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(name), state: f[0], ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Processes that carry `runId` in their environment (how a setsid escapee is still found). */
function carryingRunId(runId: string): number[] {
  return processes()
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p.pid}/environ`, 'latin1').split('\0').includes(`CAIRN_RUN_ID=${runId}`);
      } catch {
        return false;
      }
    })
    .map((p) => p.pid);
}

const isLive = (p: Proc | undefined) => p !== undefined && p.state !== 'Z';

export const scenario: ChaosScenario = {
  name: 'orphans',
  fault: 'a stage leaves `sleep 999 &` grandchildren (one escapes with setsid); kill -9 the daemon; restart',
  target: 'descendants left alive 0, two copies of one stage at once 0, zombies 0; stage_runs.pgid recorded',
  async run({ quick, workDir, log }) {
    const ws = new Workspace(workDir);
    const script = path.join(workDir, 'orphans.sh');
    writeFileSync(script, orphanScript(ws.recordDir));
    chmodSync(script, 0o755);
    const env = { STAGE_RECORD_DIR: ws.recordDir, ESCAPE: '1' };
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' }, stages: { plan: { run: [script], env } } });
    const rounds = quick ? 1 : 5;
    const tasksPerRound = quick ? 2 : 3;
    const failures: string[] = [];
    const watched = new Set<number>();
    let leftAlive = 0;
    let overlaps = 0;
    let zombies = 0;
    let groups = 0;
    let toInit = 0;
    const daemons: DaemonProcess[] = [];
    try {
      for (let round = 0; round < rounds; round++) {
        const first = ws.startDaemon();
        daemons.push(first);
        await first.waitForLog(/daemon started/);
        const ids = Array.from({ length: tasksPerRound }, (_, i) => ws.submit(`orphans round ${round + 1} task ${i + 1}`));
        // Every plan attempt 1 running with its group recorded and its grandchildren started.
        const runs = await waitFor('the plan stages to start with their process groups recorded', 20_000, () => {
          const rows = readDb(ws.dbFile, (db) =>
            db
              .prepare(`SELECT task_id, run_id, pgid FROM stage_runs WHERE stage = 'plan' AND attempt = 1 AND outcome IS NULL AND pgid IS NOT NULL
                        AND task_id IN (${ids.join(',')})`)
              .all() as { task_id: number; run_id: string; pgid: number }[],
          );
          if (rows.length < ids.length) return undefined;
          const inGroups = processes().filter((p) => rows.some((r) => r.pgid === p.pgid));
          // leader + 2 sleeps per group
          return inGroups.length >= rows.length * 3 ? rows : undefined;
        });
        const stamps: number[] = [];
        for (const r of runs) {
          // leader + 2 sleeps, + the setsid escapee on task 1
          const want = r.task_id === 1 ? 4 : 3;
          const pids = await waitFor(`task ${r.task_id}'s ${want} processes`, 5000, () => {
            const found = carryingRunId(r.run_id);
            return found.length >= want ? found : undefined;
          });
          stamps.push(...pids);
          writeFileSync(path.join(ws.recordDir, `old-pids-${r.task_id}`), pids.join('\n') + '\n');
        }
        for (const pid of stamps) watched.add(pid);
        groups += runs.length;
        log(`round ${round + 1}: ${runs.length} stage group(s) (${runs.map((r) => r.pgid).join(', ')}), ${stamps.length} processes; kill -9 the daemon`);

        await first.kill('SIGKILL');
        const survivors = processes().filter((p) => stamps.includes(p.pid) && isLive(p));
        if (survivors.length === 0) failures.push(`round ${round + 1}: the stages died with the daemon; the fault was not injected`);

        const second = ws.startDaemon();
        daemons.push(second);
        await second.waitForLog(/daemon started/);
        await waitAllTerminal(ws.dbFile, 30_000);
        // cairn must reap its own children; zombies handed to init are init's to reap.
        const unreaped = processes().filter((p) => p.state === 'Z' && p.ppid === second.pid);
        zombies += unreaped.length;
        for (const p of unreaped) failures.push(`round ${round + 1}: pid ${p.pid} is a zombie child of the daemon`);
        await second.kill('SIGTERM');
        await sleep(200); // let init reap what it inherited
        const after = processes();
        const alive = after.filter((p) => stamps.includes(p.pid) && isLive(p));
        // A killed orphan is reparented to init; one init does not reap (this sandbox's pid 1) is not cairn's.
        const dead = after.filter((p) => stamps.includes(p.pid) && p.state === 'Z' && p.ppid !== 1);
        toInit += after.filter((p) => stamps.includes(p.pid) && p.state === 'Z' && p.ppid === 1).length;
        leftAlive += alive.length;
        zombies += dead.length;
        for (const p of alive) failures.push(`round ${round + 1}: pid ${p.pid} (group ${p.pgid}, session ${p.sid}) of a dead daemon's stage is still alive`);
        for (const p of dead) failures.push(`round ${round + 1}: pid ${p.pid} is a zombie of parent ${p.ppid}, which is not init`);
      }
      const overlapFile = path.join(ws.recordDir, 'overlaps');
      const overlapLines = existsSync(overlapFile) ? readFileSync(overlapFile, 'utf8').trim().split('\n').filter(Boolean) : [];
      overlaps = overlapLines.length;
      for (const line of overlapLines) {
        const [task, pid] = line.split(' ');
        failures.push(`task ${task}: attempt 2 started while pid ${pid} of attempt 1 was still alive`);
      }
    } finally {
      for (const d of daemons) if (d.child.exitCode === null && d.child.signalCode === null) await d.kill('SIGKILL');
      for (const pid of watched) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone: the expected case
        }
      }
    }
    const inv = checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger'));
    failures.push(...inv.violations);
    return {
      iterations: rounds,
      figure: `${groups} groups killed with the daemon: descendants left alive ${leftAlive}, two copies at once ${overlaps}, zombies ${zombies}${toInit ? ` (+${toInit} handed to an init that does not reap)` : ''}; re-executions ${inv.reExecutions}`,
      held: failures.length === 0,
      failures,
    };
  },
};
