import { describe, expect, it } from 'vitest';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

describe('cairn run (foreground)', () => {
  it('drives a new task to completion with auto gates and exits 0', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' } });
    const r = ws.cli(['run', 'do it all now']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^task 1 completed/);
    expect(ws.show(1).state).toBe('completed');
    const status = ws.json(['status']);
    expect(status.session.status).toBe('stopped');
    expect(status.counts).toEqual({ completed: 1 });
  });

  it('stops at a manual gate with what to do next, and `run --resume` continues after approval', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'manual', implementation: 'auto' } });
    const first = ws.cli(['run', 'needs a human']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/task 1 is plan_awaiting_approval: approve with `cairn approve 1`.*`cairn run --resume 1`/);
    expect(ws.cli(['approve', '1']).code).toBe(0);
    const second = ws.cli(['run', '--resume', '1', '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ id: 1, state: 'completed' });
  });

  it('exits 1 when the task fails, saying how to retry', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' }, limits: { stageAttempts: 1 } }, { plan: { FAIL_ATTEMPTS: '9' } });
    const r = ws.cli(['run', 'doomed']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/task 1 failed: .*exited with code 3; `cairn retry 1` tries the failed stage again/);
  });

  it('run --resume continues a task interrupted by a killed daemon', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' } }, { plan: { STAGE_SLEEP: '30', SLEEP_ATTEMPTS: '1' } });
    const daemon = ws.startDaemon();
    const id = ws.submit('interrupted');
    await waitFor(() => ws.ledger().length === 1, { what: 'plan started' });
    await daemon.kill('SIGKILL');
    const listed = ws.cli(['--list-resumable', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).map((t: any) => t.id)).toEqual([id]);
    const r = ws.cli(['run', '--resume', String(id)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/completed/);
    expect(ws.ledger().filter((l) => l.stage === 'plan').map((l) => l.attempt)).toEqual([1, 2]);
  });
});

describe('cairn rewind', () => {
  it('puts a completed task back to a checkpoint; history keeps everything and the task runs on from there', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'manual', implementation: 'auto' } });
    const daemon = ws.startDaemon();
    try {
      const id = ws.submit('rewind me');
      await waitFor(() => ws.show(id).state === 'plan_awaiting_approval', { what: 'plan gate' });
      expect(ws.cli(['approve', String(id)]).code).toBe(0);
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed' });
      const before = ws.history(id).length;

      const r = ws.cli(['rewind', String(id), '--to', 'after_planning', '--by', 'ann']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/task 1 rewound to after_planning; now plan_awaiting_approval/);
      const rewound = ws.show(id);
      expect(rewound.outputs).toEqual({ plan: { stage: 'plan', attempt: 1 }, implementation: null, review: null, verification: null });
      expect(ws.history(id).length).toBe(before + 1);
      expect(ws.history(id).at(-1)).toMatchObject({ from: 'completed', to: 'plan_awaiting_approval', event: { type: 'REWIND', to: 'after_planning' }, actor: 'user:ann' });

      expect(ws.cli(['approve', String(id)]).code).toBe(0);
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed again' });
      // Attempts keep counting up, so the second pass has its own run ids and log files.
      expect(ws.show(id).attempts).toEqual({ plan: 1, implement: 2, review: 2, verify: 2 });
      expect(ws.ledger().filter((l) => l.stage === 'verify').map((l) => l.runId)).toEqual([`${id}.verify.1`, `${id}.verify.2`]);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('rewinding a running task stops its stage and runs it again from the checkpoint', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' } }, { implement: { STAGE_SLEEP: '30', SLEEP_ATTEMPTS: '1' } });
    const daemon = ws.startDaemon();
    try {
      const id = ws.submit('rewind while running');
      await waitFor(() => ws.ledger().some((l) => l.stage === 'implement'), { what: 'implement started' });
      expect(ws.cli(['rewind', String(id), '--to', 'start_implementation']).code).toBe(0);
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed' });
      expect(ws.show(id).runs.filter((r: any) => r.stage === 'implement').map((r: any) => [r.attempt, r.outcome])).toEqual([
        [1, 'superseded'],
        [2, 'succeeded'],
      ]);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });
});

describe('leases', () => {
  it('the heartbeat renews a running stage\'s lease, so a stage longer than staleAfter is not taken for interrupted', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig(
      { approvals: { plan: 'auto', implementation: 'auto' }, heartbeat: { cron: '*/1 * * * * *', staleAfter: '2s' } },
      { plan: { STAGE_SLEEP: '60' } },
    );
    const daemon = ws.startDaemon();
    try {
      const id = ws.submit('long stage');
      await waitFor(() => ws.ledger().length === 1, { what: 'plan started' });
      const firstExpiry = Date.parse(ws.show(id).lease.expires_at);
      // Wait until the lease taken at the claim would have run out.
      await waitFor(() => Date.now() > firstExpiry + 500, { what: 'first lease expiry passed', timeoutMs: 5000 });
      expect(ws.json<any[]>(['list-resumable'])).toEqual([]);
      const lease = ws.show(id).lease;
      expect(lease).not.toBeNull();
      expect(Date.parse(lease.expires_at)).toBeGreaterThan(firstExpiry);
      expect(ws.show(id).runs).toEqual([expect.objectContaining({ stage: 'plan', attempt: 1, outcome: null })]);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });
});
