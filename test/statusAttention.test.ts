/**
 * `cairn status` names what needs a person: the tasks waiting for approval oldest first with how long
 * each has waited, failed tasks with their error, and stages stuck past their timeout, each line saying
 * what to do, long lists cut at ten. The tasks are put in place in this process with a clock set in the
 * past (the engine and store the daemon uses); the real `cairn status` from dist/ reads them.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Engine } from '../src/engine/engine.js';
import { loadConfig } from '../src/loadConfig.js';
import { thisHost } from '../src/process/sessions.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { Workspace } from './helpers/cairnProcess.js';
import { succeedNextStage } from './helpers/driveTask.js';
import { tempDir } from './helpers/tmp.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('cairn status: what needs a person', () => {
  it('lists waiting approvals oldest first with their waits, a failed task and a stuck stage, each with what to do', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ limits: { stageAttempts: 1 }, stages: { plan: { run: ['/bin/true'], timeout: '1m' } } });
    ws.createDataDir();
    const config = await loadConfig({ file: path.join(ws.dir, 'cairn.config.json'), cwd: ws.dir, env: {} });
    const store = openSqliteStore(ws.dbFile);
    const t0 = Date.now();
    let now = t0;
    const engine = new Engine(store, config, () => now);
    // A session that is alive (this process, heartbeating) and runs every stage below.
    const session = await store.createSession({ id: 'busy-daemon', pid: process.pid, host: thisHost, at: t0 - 3 * HOUR });
    try {
      /** Task `id` reaches the plan gate (or the implementation gate) `waitedMs` before t0. */
      const reachGate = async (waitedMs: number, gate: 'plan' | 'implementation') => {
        now = t0 - waitedMs - 10 * MIN;
        const { id } = await engine.submit({ request: `waits ${waitedMs / MIN} min at ${gate}` }, 'test');
        await engine.start(id, 'test');
        if (gate === 'implementation') {
          await succeedNextStage(engine, store, id, session.id);
          await engine.approve(id, 'test');
        }
        now = t0 - waitedMs;
        await succeedNextStage(engine, store, id, session.id);
        return id;
      };
      // Ids in an order their waits are not: the list must be sorted by wait, not by id.
      expect(await reachGate(20 * MIN, 'implementation')).toBe(1);
      expect(await reachGate(3 * HOUR + 10 * MIN, 'plan')).toBe(2);
      expect(await reachGate(HOUR, 'plan')).toBe(3);
      for (let id = 4; id <= 12; id++) expect(await reachGate((13 - id) * MIN, 'plan')).toBe(id); // 9 min … 1 min

      // Task 13 fails in plan: one attempt allowed, and it exited 3.
      now = t0 - 30 * MIN;
      const failed = (await engine.submit({ request: 'fails' }, 'test')).id;
      await engine.start(failed, 'test');
      const claim = (await store.claimRun(failed, session.id, now, 60_000))!;
      await engine.recordStageResult(
        failed,
        { type: 'STAGE_FAILED', stage: 'plan', attempt: 1, reason: 'exit', message: 'exited with code 3:\ncannot reach the build server', exitCode: 3, signal: null, at: now },
        'test',
        claim.lease.token,
      );

      // Task 14's plan has run for 2 h against a 1 min timeout; its daemon still heartbeats.
      now = t0 - 2 * HOUR;
      const stuck = (await engine.submit({ request: 'hangs' }, 'test')).id;
      await engine.start(stuck, 'test');
      expect(await store.claimRun(stuck, session.id, now, 60_000)).not.toBeNull();
      await store.heartbeatSession(session.id, Date.now(), 60_000);

      const text = ws.cli(['status']);
      expect(text.code, text.stderr).toBe(0);
      const first10 = '2 (plan, 3h 10m), 3 (plan, 1h), 1 (implementation, 20m), 4 (plan, 9m), 5 (plan, 8m), 6 (plan, 7m), 7 (plan, 6m), 8 (plan, 5m), 9 (plan, 4m), 10 (plan, 3m)';
      expect(text.stdout).toContain(
        `waiting for approval: ${first10} … and 2 more; \`cairn show ID\` to review, \`cairn approve ID\` or \`cairn reject ID --reason …\`\n`,
      );
      expect(text.stdout).toContain(
        `failed: ${failed} (plan: exited with code 3: cannot reach the build server); \`cairn show ID\` says why, \`cairn logs ID\` shows its last log, \`cairn retry ID\` runs the failed stage again\n`,
      );
      expect(text.stdout).toMatch(
        new RegExp(`stuck: ${stuck} \\(plan attempt 1, 1h 59m past its 1m timeout\\); the daemon running it may be hung: .*\`cairn cancel ID\`\\n`),
      );
      // Named once, with what to do: not again among the heartbeat's flags (status --json keeps those).
      expect(text.stdout).not.toMatch(/^\s+(stuck|approval_waiting)\s/m);

      const { attention } = ws.json(['status']);
      expect(attention.waiting_approval.total).toBe(12);
      expect(attention.waiting_approval.tasks.map((t: any) => t.id)).toEqual([2, 3, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      expect(attention.waiting_approval.tasks[0]).toEqual({
        id: 2,
        gate: 'plan',
        state: 'plan_awaiting_approval',
        since: new Date(t0 - 3 * HOUR - 10 * MIN).toISOString(),
        waited_ms: expect.any(Number),
      });
      expect(attention.waiting_approval.tasks[0].waited_ms).toBeGreaterThanOrEqual(3 * HOUR + 10 * MIN);
      expect(attention.waiting_approval.tasks[2]).toMatchObject({ id: 1, gate: 'implementation', state: 'implementation_awaiting_approval' });
      expect(attention.failed).toEqual({
        total: 1,
        tasks: [{ id: failed, stage: 'plan', attempt: 1, error: 'exited with code 3:\ncannot reach the build server', failed_at: new Date(t0 - 30 * MIN).toISOString() }],
      });
      expect(attention.stuck).toMatchObject({
        total: 1,
        stages: [{ task: stuck, stage: 'plan', attempt: 1, session: 'busy-daemon', started_at: new Date(t0 - 2 * HOUR).toISOString(), timeout_ms: MIN }],
      });
      expect(attention.stuck.stages[0].past_timeout_ms).toBeGreaterThanOrEqual(2 * HOUR - MIN);
    } finally {
      await store.close();
    }
  });

  it('prints no attention lines when nothing waits on anyone, and empty lists in --json', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    ws.submit('just queued');
    const text = ws.cli(['status']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).not.toMatch(/waiting for approval|failed:|stuck:/);
    expect(ws.json(['status']).attention).toEqual({
      waiting_approval: { total: 0, tasks: [] },
      failed: { total: 0, tasks: [] },
      stuck: { total: 0, stages: [] },
    });
  });
});
