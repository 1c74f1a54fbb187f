import { describe, expect, it } from 'vitest';
import { isAlive, Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const FULL_PATH = [
  'pending',
  'planning',
  'plan_awaiting_approval',
  'implementing',
  'implementation_awaiting_approval',
  'reviewing',
  'verifying',
  'completed',
];

describe('a real `cairn start` process driven through the CLI', () => {
  it('runs tasks submitted and approved through the CLI to completion, with every state in history', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/cairn daemon started/);
      const ids = [ws.submit('first task'), ws.submit('second task', ['--priority', 'high', '--tag', 'docs'])];
      for (const gate of ['plan_awaiting_approval', 'implementation_awaiting_approval']) {
        for (const id of ids) {
          await waitFor(() => ws.show(id).state === gate, { what: `task ${id} at ${gate}` });
          const approved = ws.cli(['approve', String(id), '--by', 'ann', '--comment', 'looks right']);
          expect(approved.code, approved.stderr).toBe(0);
          expect(approved.stdout).toMatch(new RegExp(`task ${id} approved by ann`));
        }
      }
      for (const id of ids) await waitFor(() => ws.show(id).state === 'completed', { what: `task ${id} completed` });

      for (const id of ids) {
        const history = ws.history(id);
        expect(history.map((h) => h.to)).toEqual(FULL_PATH);
        expect(history.map((h) => h.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
        const shown = ws.show(id);
        expect(shown.status).toBe('completed');
        expect(shown.approvals.map((a: any) => [a.gate, a.decision, a.by, a.comment])).toEqual([
          ['plan', 'approved', 'ann', 'looks right'],
          ['implementation', 'approved', 'ann', 'looks right'],
        ]);
        expect(shown.checkpoints.map((c: any) => c.name)).toEqual([
          'workflow_start',
          'after_planning',
          'start_implementation',
          'after_implementation',
          'after_review',
          'after_verification',
        ]);
        expect(shown.outputs.plan).toEqual({ stage: 'plan', attempt: 1 });
        expect(shown.outputs.review).toEqual({ verdict: 'approve', comments: 'review comments at attempt 1' });
        expect(shown.attempts).toEqual({ plan: 1, implement: 1, review: 1, verify: 1 });
      }
      const list = ws.json<any[]>(['list', '--tag', 'docs']);
      expect(list.map((t) => t.id)).toEqual([ids[1]]);
      expect(Object.keys(list[0]).sort()).toEqual(['created_at', 'id', 'priority', 'request', 'state', 'status', 'tags', 'updated_at']);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('hands each stage the JSON input and CAIRN_* identity, and logs its output per attempt', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' } });
    const daemon = ws.startDaemon();
    try {
      const id = ws.submit('text with $(touch pwned) and `id` and ; rm -rf / in it', ['--tag', 'x']);
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed' });
      const input = ws.stageInput(id, 'review', 1);
      expect(input).toMatchObject({
        task_id: id,
        request: 'text with $(touch pwned) and `id` and ; rm -rf / in it',
        priority: 'medium',
        tags: ['x'],
        stage: 'review',
        attempt: 1,
        run_id: `${id}.review.1`,
        outputs: { plan: { stage: 'plan', attempt: 1 }, implementation: { stage: 'implement', attempt: 1 } },
        feedback: [],
      });
      expect(ws.ledger().map((l) => l.runId)).toEqual([`${id}.plan.1`, `${id}.implement.1`, `${id}.review.1`, `${id}.verify.1`]);
      const { readFileSync, existsSync, statSync } = await import('node:fs');
      const log = `${ws.dataDir}/logs/${id}/plan-1.log`;
      expect(readFileSync(log, 'utf8')).toContain('{"stage":"plan","attempt":1}');
      expect(statSync(log).mode & 0o777).toBe(0o600);
      expect(statSync(ws.dataDir).mode & 0o777).toBe(0o700);
      expect(statSync(ws.dbFile).mode & 0o777).toBe(0o600);
      expect(existsSync(`${ws.dir}/pwned`)).toBe(false);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('cancel from the CLI stops the running stage program and nothing more runs', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({}, { plan: { STAGE_SLEEP: '30' } });
    const daemon = ws.startDaemon();
    try {
      const id = ws.submit('long plan');
      const started = await waitFor(() => ws.ledger().find((l) => l.stage === 'plan'), { what: 'plan started' });
      expect(isAlive(started.pid)).toBe(true);
      const r = ws.cli(['cancel', String(id), '--reason', 'changed my mind']);
      expect(r.code, r.stderr).toBe(0);
      await waitFor(() => !isAlive(started.pid), { what: 'stage process gone' });
      await daemon.waitForLog(/stopped; nothing recorded/);
      const shown = ws.show(id);
      expect(shown.state).toBe('cancelled');
      expect(shown.error_details).toMatchObject({ reason: 'cancelled', message: 'changed my mind' });
      expect(ws.history(id).map((h) => h.to)).toEqual(['pending', 'planning', 'cancelled']);
      expect(shown.runs).toEqual([expect.objectContaining({ stage: 'plan', attempt: 1, outcome: 'superseded' })]);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('a task runs under the rules of the daemon that starts it, not of the CLI that queued it', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' } });
    // Queued by a CLI using another config (its defaults: both gates manual), as from another directory.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${ws.dir}/elsewhere.json`, JSON.stringify({ dataDir: 'state' }));
    const queued = ws.cli(['--config', 'elsewhere.json', 'submit', 'queued from elsewhere', '--json']);
    expect(queued.code, queued.stderr).toBe(0);
    const id = JSON.parse(queued.stdout).id;
    const daemon = ws.startDaemon();
    try {
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed without waiting at a gate' });
      expect(ws.show(id).approvals.map((a: any) => a.decision)).toEqual(['auto_approved', 'auto_approved']);
      expect(ws.history(id)[1].event).toMatchObject({ type: 'START', policy: { approvals: { plan: 'auto', implementation: 'auto' } } });
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('starts pending tasks highest priority first, then oldest', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ concurrency: 1 });
    const low = ws.submit('low', ['--priority', 'low']);
    const medium = ws.submit('medium');
    const high = ws.submit('high', ['--priority', 'high']);
    const medium2 = ws.submit('medium, later');
    const daemon = ws.startDaemon();
    try {
      await waitFor(() => ws.json<any[]>(['list', '--status', 'awaiting_approval']).length === 4, { what: 'all four planned' });
      expect(ws.ledger().map((l) => l.task)).toEqual([high, medium, medium2, low]);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('dispatches by dependencies and concurrency', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ concurrency: 1, approvals: { plan: 'auto', implementation: 'auto' } });
    const first = ws.submit('build the base', ['--priority', 'low']);
    const dependent = ws.submit('build on it', ['--priority', 'high', '--depends-on', String(first)]);
    const daemon = ws.startDaemon();
    try {
      await waitFor(() => ws.show(dependent).state === 'completed', { what: 'dependent completed' });
      const order = ws.ledger().map((l) => `${l.task}:${l.stage}`);
      // The high-priority task waited for its low-priority dependency; with one slot nothing overlapped.
      expect(order).toEqual([
        `${first}:plan`,
        `${first}:implement`,
        `${first}:review`,
        `${first}:verify`,
        `${dependent}:plan`,
        `${dependent}:implement`,
        `${dependent}:review`,
        `${dependent}:verify`,
      ]);
      expect(ws.show(dependent).depends_on).toEqual([first]);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });
});
