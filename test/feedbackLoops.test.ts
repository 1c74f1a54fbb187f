import { describe, expect, it } from 'vitest';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

/** Runs a daemon for the duration of `body`. */
async function withDaemon(ws: Workspace, body: () => Promise<void>) {
  const daemon = ws.startDaemon();
  try {
    await daemon.waitForLog(/cairn daemon started/);
    await body();
  } finally {
    await daemon.kill('SIGTERM');
  }
}

describe('loops back with feedback on the next attempt\'s stdin, and stops at the bound', () => {
  it('a plan rejection re-plans with the reason as feedback', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'manual', implementation: 'auto' } });
    await withDaemon(ws, async () => {
      const id = ws.submit('plan me');
      await waitFor(() => ws.show(id).state === 'plan_awaiting_approval', { what: 'first plan' });
      const r = ws.cli(['reject', String(id), '--reason', 'too vague: name the files', '--by', 'bob']);
      expect(r.code, r.stderr).toBe(0);
      await waitFor(() => ws.show(id).attempts.plan === 2 && ws.show(id).state === 'plan_awaiting_approval', { what: 'second plan' });
      expect(ws.stageInput(id, 'plan', 2).feedback).toEqual([
        expect.objectContaining({ source: 'plan_rejected', stage: 'plan', text: 'too vague: name the files', by: 'bob' }),
      ]);
      expect(ws.stageInput(id, 'plan', 1).feedback).toEqual([]);
      expect(ws.cli(['approve', String(id)]).code).toBe(0);
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed' });
      expect(ws.show(id).approvals.map((a: any) => a.decision)).toEqual(['rejected', 'approved', 'auto_approved']);
    });
  });

  it('an implementation rejection re-implements with the reason as feedback', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'manual' } });
    await withDaemon(ws, async () => {
      const id = ws.submit('implement me');
      await waitFor(() => ws.show(id).state === 'implementation_awaiting_approval', { what: 'first implementation' });
      expect(ws.cli(['reject', String(id), '--reason', 'no tests']).code).toBe(0);
      await waitFor(() => ws.show(id).attempts.implement === 2 && ws.show(id).status === 'awaiting_approval', { what: 're-implemented' });
      expect(ws.stageInput(id, 'implement', 2).feedback).toEqual([
        expect.objectContaining({ source: 'implementation_rejected', text: 'no tests' }),
      ]);
    });
  });

  it('review request_changes loops to implementing with the comments, then fails past limits.reviewCycles', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig(
      { approvals: { plan: 'auto', implementation: 'auto' }, limits: { reviewCycles: 1, retryBackoff: '50ms' } },
      { review: { REVIEW_VERDICT: 'request_changes' } },
    );
    await withDaemon(ws, async () => {
      const id = ws.submit('review me');
      await waitFor(() => ws.show(id).state === 'failed', { what: 'failed after review cycles' });
      expect(ws.stageInput(id, 'implement', 2).feedback).toEqual([
        expect.objectContaining({ source: 'review', stage: 'review', text: 'review comments at attempt 1' }),
      ]);
      const shown = ws.show(id);
      expect(shown.attempts).toMatchObject({ implement: 2, review: 2, verify: 0 });
      expect(shown.error_details).toMatchObject({ stage: 'review', reason: 'review_cycles_exhausted' });
      expect(shown.error_details.message).toMatch(/limits\.reviewCycles/);
    });
  });

  it('a failing verify loops to implementing with its output, then fails past limits.verifyCycles', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig(
      { approvals: { plan: 'auto', implementation: 'auto' }, limits: { verifyCycles: 1, retryBackoff: '50ms' } },
      { verify: { FAIL_ATTEMPTS: '99' } },
    );
    await withDaemon(ws, async () => {
      const id = ws.submit('verify me');
      await waitFor(() => ws.show(id).state === 'failed', { what: 'failed after verify cycles' });
      expect(ws.stageInput(id, 'implement', 2).feedback).toEqual([
        expect.objectContaining({ source: 'verification', stage: 'verify', text: 'failing on purpose at attempt 1' }),
      ]);
      const shown = ws.show(id);
      expect(shown.attempts).toMatchObject({ implement: 2, verify: 2 });
      expect(shown.error_details).toMatchObject({ stage: 'verify', reason: 'verify_cycles_exhausted' });
      expect(shown.outputs.verification).toBe('failing on purpose at attempt 2');
    });
  });

  it('a failing executor is retried with the failure as feedback, fails past limits.stageAttempts, and `cairn retry` runs it again', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ limits: { stageAttempts: 2, retryBackoff: '100ms' } }, { plan: { FAIL_ATTEMPTS: '99' } });
    await withDaemon(ws, async () => {
      const id = ws.submit('fail me');
      await waitFor(() => ws.show(id).state === 'failed', { what: 'failed after stage attempts' });
      expect(ws.stageInput(id, 'plan', 2).feedback).toEqual([
        expect.objectContaining({ source: 'stage_failure', stage: 'plan', text: expect.stringMatching(/exited with code 3/) }),
      ]);
      const shown = ws.show(id);
      expect(shown.error_details).toMatchObject({ stage: 'plan', reason: 'exit', exitCode: 3, attempt: 2 });
      expect(shown.runs.map((r: any) => [r.attempt, r.outcome, r.exit_code])).toEqual([
        [1, 'failed', 3],
        [2, 'failed', 3],
      ]);
      // The second attempt waited for its backoff after the first failed.
      const [first, second] = shown.runs;
      expect(Date.parse(second.started_at) - Date.parse(first.finished_at)).toBeGreaterThanOrEqual(100);

      const retried = ws.cli(['retry', String(id)]);
      expect(retried.code, retried.stderr).toBe(0);
      expect(retried.stdout).toMatch(/now planning/);
      await waitFor(() => ws.ledger().filter((l) => l.stage === 'plan').length === 4, { what: 'two more plan runs' });
      await waitFor(() => ws.show(id).state === 'failed', { what: 'failed again' });
      expect(ws.history(id).filter((h) => h.event.type === 'RETRY').length).toBe(1);
    });
  });
});
