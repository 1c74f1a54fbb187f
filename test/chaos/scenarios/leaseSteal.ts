/**
 * A daemon frozen with SIGSTOP past its lease (heartbeat.staleAfter 2 s) while its implement stages
 * run; a second daemon on the same SQLite file marks it stale and takes its tasks over; then the
 * first is thawed with SIGCONT and offers its late results. None may be recorded, and no stage may
 * run twice at once: the taken-over run must be ended before its replacement starts.
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { Workspace, type DaemonProcess } from '../../helpers/cairnProcess.js';
import { cliAsync } from '../cliAsync.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { describeStates, waitUntil } from '../settle.js';
import { readTasks, sleep } from '../waitFor.js';
import { readStageRuns, timedStages } from '../timedStage.js';

const TASKS = 3;

interface Round {
  takenOver: number;
  /** Results of runs that were taken over (outcome interrupted) that got recorded anyway. */
  staleAccepted: number;
  lateRefused: number;
  /** Freezes that landed inside a write transaction and were redone. */
  frozenMidWrite: number;
  overlaps: string[];
  failures: string[];
}

/** Results recorded for runs that another daemon took over: each one a stale completion accepted. */
function staleCompletions(dbFile: string): { takenOver: number; accepted: string[] } {
  const db = new Database(dbFile, { readonly: true });
  try {
    const takenOver = db.prepare(`SELECT COUNT(*) FROM stage_runs WHERE outcome = 'interrupted'`).pluck().get() as number;
    const accepted = db
      .prepare(`SELECT r.task_id, r.stage, r.attempt, t.event_type, t.actor FROM stage_runs r JOIN transitions t
                ON t.task_id = r.task_id AND t.stage = r.stage AND t.attempt = r.attempt
                WHERE r.outcome = 'interrupted' AND t.event_type IN ('STAGE_SUCCEEDED', 'STAGE_FAILED')`)
      .all() as { task_id: number; stage: string; attempt: number; event_type: string; actor: string }[];
    return { takenOver, accepted: accepted.map((a) => `task ${a.task_id} ${a.stage} attempt ${a.attempt} was taken over, yet ${a.event_type} by ${a.actor} was recorded`) };
  } finally {
    db.close();
  }
}

/**
 * Whether some process holds the database's write lock right now. A daemon frozen inside a write
 * transaction keeps it, and SQLite gives nobody a way to break it: every other process waits out
 * its busy timeout (the second daemon then exits, saying the file stayed locked). That is SQLite's
 * limit, not a lease to steal, so such a freeze is undone and tried again a moment later.
 */
function isWriteLocked(dbFile: string): boolean {
  const db = new Database(dbFile, { timeout: 0 });
  try {
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
    return false;
  } catch (e) {
    if ((e as { code?: string }).code === 'SQLITE_BUSY') return true;
    throw e;
  } finally {
    db.close();
  }
}

async function stealOnce(ws: Workspace): Promise<Round> {
  ws.writeConfig({
    approvals: { plan: 'auto', implementation: 'auto' },
    concurrency: TASKS,
    heartbeat: { cron: '*/1 * * * * *', staleAfter: '2s' },
    snapshots: { onStart: false },
    // Attempt 1 of implement runs 1.5–5 s: some end while their daemon is frozen (a late result to
    // offer), some are still running at the takeover (a process the new owner must end first).
    stages: timedStages(ws, {}, { implement: { RANDOM_SLEEP_MS: '1500-5000', SLEEP_ATTEMPTS: '1' } }),
  });
  const failures: string[] = [];
  const ids: number[] = [];
  for (let i = 0; i < TASKS; i++) {
    const r = await cliAsync(ws, ['submit', `lease steal ${i}`, '--json']);
    if (r.code !== 0) throw new Error(`cairn submit exited ${r.code ?? r.signal}: ${r.stderr}`);
    ids.push(JSON.parse(r.stdout).id);
  }
  const frozen = ws.startDaemon();
  let second: DaemonProcess | null = null;
  let lateRefused = 0;
  let frozenMidWrite = 0;
  try {
    await frozen.waitForLog(/cairn daemon started/, 30_000);
    await waitUntil(() => ws.ledger().filter((l) => l.stage === 'implement').length === TASKS, 30_000, 'every implement attempt 1 starting');
    frozen.child.kill('SIGSTOP');
    while (isWriteLocked(ws.dbFile)) {
      if (++frozenMidWrite > 20) throw new Error('the first daemon was frozen inside a write transaction 20 times in a row');
      frozen.child.kill('SIGCONT');
      await sleep(20 + Math.random() * 50);
      frozen.child.kill('SIGSTOP');
    }
    second = ws.startDaemon();
    const taker = second;
    let secondExit: string | null = null;
    void taker.exited.then((e) => (secondExit = `the second daemon exited ${e.code ?? e.signal}: ${taker.stderr.trim()}`));
    await waitUntil(
      () => secondExit !== null || readTasks(ws.dbFile).every((t) => t.state === 'completed'),
      40_000,
      'the second daemon completing every task',
      () => describeStates(readTasks(ws.dbFile)),
    );
    if (secondExit) throw new Error(secondExit);
    frozen.child.kill('SIGCONT');
    // Thawed, it must give up every run it lost: its result refused, or the run stopped unrecorded.
    const takenOver = ws.ledger().filter((l) => l.stage === 'implement' && l.attempt === 2).map((l) => l.task);
    for (const id of takenOver) {
      const line = await frozen.waitForLog(new RegExp(`task ${id}: (result of implement attempt 1 refused|implement attempt 1 stopped; nothing recorded)`), 20_000);
      if (/refused/.test(String(line.msg))) lateRefused++;
    }
    await frozen.waitForLog(/carrying on as session /, 20_000);
  } finally {
    frozen.child.kill('SIGCONT');
    const exits = await Promise.all([frozen.kill('SIGTERM'), second?.kill('SIGTERM')]);
    for (const exit of exits) if (exit && exit.code !== 0) failures.push(`a daemon exited ${exit.code ?? exit.signal} on SIGTERM`);
  }
  const stale = staleCompletions(ws.dbFile);
  failures.push(...stale.accepted, ...checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger')).violations);
  const { overlaps } = readStageRuns(ws);
  failures.push(...overlaps);
  if (stale.takenOver === 0) failures.push('no run was taken over: the second daemon never stole a lease, so nothing was tested');
  return { takenOver: stale.takenOver, staleAccepted: stale.accepted.length, lateRefused, frozenMidWrite, overlaps, failures };
}

export const scenario: ChaosScenario = {
  name: 'lease steal',
  fault: 'SIGSTOP a daemon past its 2 s lease, a second daemon on the same SQLite file takes over, SIGCONT the first (10 rounds; quick: 1)',
  target: 'stale completions accepted 0, stages running twice at once 0',
  async run({ quick, workDir, log }) {
    const rounds = quick ? 1 : 10;
    const totals = { takenOver: 0, staleAccepted: 0, lateRefused: 0, overlaps: 0, frozenMidWrite: 0 };
    const failures: string[] = [];
    for (let i = 0; i < rounds; i++) {
      const ws = new Workspace(path.join(workDir, `round-${i}`));
      try {
        const round = await stealOnce(ws);
        totals.takenOver += round.takenOver;
        totals.staleAccepted += round.staleAccepted;
        totals.lateRefused += round.lateRefused;
        totals.overlaps += round.overlaps.length;
        totals.frozenMidWrite += round.frozenMidWrite;
        failures.push(...round.failures.map((f) => `round ${i + 1}: ${f}`));
        log(`round ${i + 1}: ${round.takenOver} run(s) taken over, ${round.lateRefused} late result(s) refused, ${round.frozenMidWrite} freeze(s) redone mid-write, ${round.failures.length} failure(s)`);
      } catch (e) {
        failures.push(`round ${i + 1} in ${ws.dir}: ${(e as Error).message}`);
      }
    }
    return {
      iterations: rounds,
      figure: `stale completions accepted ${totals.staleAccepted}, twice at once ${totals.overlaps} (runs taken over ${totals.takenOver}, late results refused ${totals.lateRefused}, freezes redone mid-write ${totals.frozenMidWrite})`,
      held: failures.length === 0,
      failures,
    };
  },
};
