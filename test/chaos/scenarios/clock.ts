/**
 * The daemon's wall clock jumps +1 h and -1 h (an NTP step, a resumed VM) while stages run, through
 * the test hook CAIRN_CLOCK_OFFSET_FILE (src/daemon/clock.ts). A jump must not make the daemon think
 * its own live session is stale, must not let a lease be taken from a running stage, and must not
 * take two automatic snapshots for one hour slot.
 */
import Database from 'better-sqlite3';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { STAGE_SCRIPT, Workspace } from '../../helpers/cairnProcess.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { readTasks, sleep, waitAllTerminal, waitFor } from '../waitFor.js';

const HOUR = 3_600_000;

/** Automatic snapshots (hourly, startup) per UTC hour slot of their recorded time. */
function snapshotSlots(snapshotsDir: string): Map<string, string[]> {
  const slots = new Map<string, string[]>();
  for (const f of readdirSync(snapshotsDir).filter((f) => f.endsWith('.json'))) {
    const record = JSON.parse(readFileSync(path.join(snapshotsDir, f), 'utf8'));
    if (record.kind !== 'hourly') continue;
    const at = Date.parse(record.created_at ?? record.createdAt ?? record.at);
    const slot = new Date(Math.floor(at / HOUR) * HOUR).toISOString();
    slots.set(slot, [...(slots.get(slot) ?? []), record.name ?? f]);
  }
  return slots;
}

export const scenario: ChaosScenario = {
  name: 'clock',
  fault: "the daemon's wall clock jumps +1 h and -1 h while stages run",
  target: 'false stale flags 0, lease steals 0, duplicate snapshots 0',
  async run({ quick, workDir, log }) {
    const ws = new Workspace(workDir);
    const offsetFile = path.join(workDir, 'clock-offset');
    writeFileSync(offsetFile, '0');
    ws.writeConfig(
      {
        approvals: { plan: 'auto', implementation: 'auto' },
        heartbeat: { cron: '*/1 * * * * *', staleAfter: '5s' },
        snapshots: { cron: '0 * * * *', onStart: false },
        // A timeout makes the heartbeat judge "stuck past its timeout" for these stages too.
        stages: Object.fromEntries(
          (['plan', 'implement', 'review', 'verify'] as const).map((stage) => [
            stage,
            { run: [STAGE_SCRIPT], timeout: '10m', env: { STAGE_RECORD_DIR: ws.recordDir, ...(stage === 'plan' || stage === 'implement' ? { STAGE_SLEEP: quick ? '1' : '2' } : {}) } },
          ]),
        ),
      },
    );
    const count = quick ? 3 : 8;
    // +1 h, back, -1 h, back: each held for a few heartbeats while stages sleep through it.
    const jumps = quick ? [HOUR, 0, -HOUR, 0] : [HOUR, 0, -HOUR, 0, HOUR, -HOUR, 0, 2 * HOUR, 0];
    const holdMs = quick ? 1100 : 3000;
    const daemon = ws.startDaemon([], { CAIRN_CLOCK_OFFSET_FILE: offsetFile });
    const failures: string[] = [];
    try {
      await daemon.waitForLog(/cairn daemon started/);
      for (let i = 0; i < count; i++) ws.submit(`clock task ${i}`);
      await waitFor('a stage to be running', 20_000, () => (readTasks(ws.dbFile).some((t) => t.lease_owner) ? true : undefined), 50);
      for (const offset of jumps) {
        writeFileSync(offsetFile, String(offset));
        log(`clock offset ${offset / HOUR} h`);
        await sleep(holdMs);
      }
      await waitAllTerminal(ws.dbFile, quick ? 30_000 : 120_000, count);
      // A heartbeat or two more at the final time, so anything it would wrongly flag shows up.
      await sleep(1500);
    } finally {
      await daemon.kill('SIGTERM');
    }

    const db = new Database(ws.dbFile, { readonly: true });
    let sessions: { id: string; status: string }[];
    let resumes: number;
    try {
      sessions = db.prepare('SELECT id, status FROM sessions').all() as { id: string; status: string }[];
      resumes = db.prepare(`SELECT COUNT(*) FROM transitions WHERE event_type = 'RESUME'`).pluck().get() as number;
    } finally {
      db.close();
    }
    const staleLines = daemon.lines.filter((l) => /marked stale|stale_session|session_replaced|was marked stale/.test(JSON.stringify(l)));
    const stuckLines = daemon.lines.filter((l) => l.flag === 'stuck' || l.flag === 'stale_session' || l.flag === 'session_replaced');
    const falseStale = sessions.filter((s) => s.status === 'stale').length + staleLines.length + stuckLines.length;
    for (const s of sessions) if (s.status === 'stale') failures.push(`session ${s.id} was marked stale while it ran`);
    for (const l of [...staleLines, ...stuckLines]) failures.push(`false flag: ${String(l.msg).slice(0, 200)}`);
    if (sessions.length !== 1) failures.push(`${sessions.length} sessions, want 1: the daemon replaced its own session`);

    const inv = checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger'));
    failures.push(...inv.violations);
    const steals = resumes + inv.reExecutions + (sessions.length - 1);
    if (resumes) failures.push(`${resumes} RESUME transition(s): a running stage's lease was taken`);
    if (inv.reExecutions) failures.push(`${inv.reExecutions} stage re-execution(s)`);

    const slots = snapshotSlots(path.join(ws.dataDir, 'snapshots'));
    let duplicates = 0;
    for (const [slot, names] of slots) {
      if (names.length > 1) {
        duplicates += names.length - 1;
        failures.push(`${names.length} hourly snapshots for the hour from ${slot}: ${names.join(', ')}`);
      }
    }
    log(`${[...slots.values()].flat().length} hourly snapshots in ${slots.size} slots; ${sessions.length} session(s)`);
    return {
      iterations: jumps.length,
      figure: `false stale flags ${falseStale}, lease steals ${steals}, duplicate snapshots ${duplicates}`,
      held: failures.length === 0,
      failures,
    };
  },
};
