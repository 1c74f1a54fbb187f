/**
 * A stage that hangs is stopped by its limits and retried: one prints nothing and never exits (its
 * `idleTimeout` stops it), one prints for ever and ignores SIGTERM (its `timeout` stops it, SIGKILL
 * after the grace). Measured from the run's start (stage_runs.started_at) to its STAGE_FAILED
 * transition, and the next attempt must run and finish the task.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { STAGE_SCRIPT, Workspace } from '../../helpers/cairnProcess.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { readDb, waitAllTerminal } from '../waitFor.js';

/** commandStage.ts KILL_GRACE_MS: SIGTERM to SIGKILL. */
const KILL_GRACE_MS = 2000;
/** Scheduling noise on a shared 2-core machine: claim → spawn, timers firing late, the result write. */
const SLACK_MS = 1500;

/** Attempt 1 records itself in the ledger, then misbehaves; later attempts are the ordinary fixture. */
function hangScript(body: string): string {
  return `#!/usr/bin/env bash
if [ "$CAIRN_ATTEMPT" -le 1 ]; then
  printf '%s %s %s %s %s\\n' "$CAIRN_RUN_ID" "$CAIRN_TASK_ID" "$CAIRN_STAGE" "$CAIRN_ATTEMPT" "$$" >> "$STAGE_RECORD_DIR/ledger"
  ${body}
fi
exec ${JSON.stringify(STAGE_SCRIPT)}
`;
}

export const scenario: ChaosScenario = {
  name: 'hung stage',
  fault: 'a stage that prints nothing and never exits; a stage that prints for ever and ignores SIGTERM',
  target: 'stopped after its idleTimeout (silent) and its timeout + the 2 s SIGTERM→SIGKILL grace (printing), then retried',
  async run({ quick, workDir, log }) {
    const ws = new Workspace(workDir);
    const silent = path.join(workDir, 'silent.sh');
    const chatty = path.join(workDir, 'chatty.sh');
    writeFileSync(silent, hangScript('exec sleep 999'));
    writeFileSync(chatty, hangScript("trap '' TERM\n  while :; do echo tick; sleep 0.1; done"));
    chmodSync(silent, 0o755);
    chmodSync(chatty, 0o755);
    const idleMs = quick ? 1000 : 3000;
    const timeoutMs = quick ? 1500 : 5000;
    const env = { STAGE_RECORD_DIR: ws.recordDir };
    ws.writeConfig({
      approvals: { plan: 'auto', implementation: 'auto' },
      // The silent stage would outlast any timeout; idleTimeout must be what stops it.
      stages: {
        plan: { run: [silent], env, idleTimeout: `${idleMs}ms`, timeout: '60s' },
        implement: { run: [chatty], env, idleTimeout: `${idleMs}ms`, timeout: `${timeoutMs}ms` },
      },
    });
    const tasks = quick ? 1 : 3;
    const daemon = ws.startDaemon();
    const failures: string[] = [];
    try {
      await daemon.waitForLog(/daemon started/);
      for (let i = 0; i < tasks; i++) ws.submit(`hung stage ${i + 1}`);
      await waitAllTerminal(ws.dbFile, tasks * (idleMs + timeoutMs + KILL_GRACE_MS + 4000) + 10_000);
    } finally {
      await daemon.kill('SIGTERM');
    }

    const runs = readDb(ws.dbFile, (db) =>
      db
        .prepare(`SELECT r.task_id, r.stage, r.started_at, t.at AS failed_at, json_extract(t.event, '$.message') AS message
                  FROM stage_runs r JOIN transitions t ON t.task_id = r.task_id AND t.stage = r.stage AND t.attempt = r.attempt
                  WHERE r.attempt = 1 AND t.event_type = 'STAGE_FAILED' ORDER BY r.task_id, r.started_at`)
        .all() as { task_id: number; stage: string; started_at: number; failed_at: number; message: string }[],
    );
    const states = readDb(ws.dbFile, (db) => db.prepare('SELECT id, state FROM tasks').all() as { id: number; state: string }[]);
    const measured: Record<string, number[]> = { plan: [], implement: [] };
    for (const r of runs) {
      const ms = r.failed_at - r.started_at;
      measured[r.stage]?.push(ms);
      const [limit, kind, grace] = r.stage === 'plan' ? [idleMs, 'idle timeout', 0] : [timeoutMs, 'timeout', KILL_GRACE_MS];
      log(`task ${r.task_id} ${r.stage}: stopped after ${ms} ms (${r.message})`);
      if (!r.message.includes(`${kind} of ${limit} ms`)) failures.push(`task ${r.task_id} ${r.stage}: stopped for "${r.message}", want its ${kind} of ${limit} ms`);
      if (ms < limit || ms > limit + grace + SLACK_MS) {
        failures.push(`task ${r.task_id} ${r.stage}: stopped after ${ms} ms, want ${limit}–${limit + grace + SLACK_MS} ms (${kind} ${limit} ms${grace ? ` + ${grace} ms grace` : ''})`);
      }
    }
    for (const stage of ['plan', 'implement']) {
      if (measured[stage].length !== tasks) failures.push(`${measured[stage].length} of ${tasks} hung ${stage} attempts were stopped by a timeout`);
    }
    for (const t of states) if (t.state !== 'completed') failures.push(`task ${t.id} ended ${t.state}: the retry after the timeout did not finish it`);
    const inv = checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger'));
    failures.push(...inv.violations);
    const range = (xs: number[]) => (xs.length ? `${Math.min(...xs)}–${Math.max(...xs)} ms` : 'never');
    return {
      iterations: tasks,
      figure:
        `silent: stopped after ${range(measured.plan)} (idleTimeout ${idleMs} ms); ` +
        `printing: after ${range(measured.implement)} (timeout ${timeoutMs} + grace ${KILL_GRACE_MS} ms); ` +
        `retried and completed ${states.filter((t) => t.state === 'completed').length}/${tasks}; re-executions ${inv.reExecutions}`,
      held: failures.length === 0,
      failures,
    };
  },
};
