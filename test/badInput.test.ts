import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

function workspaceWithTask(): { ws: Workspace; id: number } {
  const ws = new Workspace(tempDir());
  ws.writeConfig();
  return { ws, id: ws.submit('a task') };
}

describe('bad input gets a clear message, the right exit code, and corrupts nothing', () => {
  it('unknown, malformed and wrong-state task ids', () => {
    const { ws, id } = workspaceWithTask();
    const before = ws.show(id);
    const cases: [string[], number, RegExp][] = [
      [['show', '999'], 1, /task 999 does not exist; `cairn list` shows the tasks there are/],
      [['approve', '999'], 1, /task 999 does not exist/],
      [['history', 'abc'], 2, /"abc" is not a task id/],
      [['show', '0'], 2, /"0" is not a task id/],
      [['cancel', '1.5'], 2, /"1.5" is not a task id/],
      [['approve', String(id)], 1, /task 1 is pending; approve needs a task at plan_awaiting_approval or implementation_awaiting_approval/],
      [['reject', String(id), '--reason', 'no'], 1, /task 1 is pending; reject needs a task at/],
      [['retry', String(id)], 1, /task 1 is pending; retry needs a failed task/],
      [['resume', String(id)], 1, /task 1 is pending; resume needs a task interrupted in a stage/],
      [['rewind', String(id), '--to', 'after_review'], 1, /task 1 has not reached checkpoint after_review; it has: workflow_start/],
      [['rewind', String(id), '--to', 'yesterday'], 2, /"yesterday" is not a checkpoint name; use one of workflow_start/],
      [['submit', 'x', '--depends-on', '42'], 1, /task 42 does not exist/],
      [['submit', '   '], 2, /the request from the argument is empty/],
    ];
    for (const [args, code, message] of cases) {
      const r = ws.cli(args);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toMatch(message);
    }
    expect(ws.cli(['cancel', String(id)]).code).toBe(0);
    const again = ws.cli(['cancel', String(id)]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/task 1 is cancelled; only a task that has not finished can be cancelled/);
    expect(ws.history(id).map((h) => h.event.type)).toEqual(['SUBMIT', 'CANCEL']);
    expect(ws.show(id).request).toBe(before.request);
  });

  it('usage errors exit 2: unknown verb, missing required flag, bad choices and numbers', () => {
    const { ws, id } = workspaceWithTask();
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['reject', String(id)], /required option '--reason <text>' not specified/],
      [['submit', 'x', '--priority', 'urgent'], /Allowed choices are high, medium, low/],
      [['list', '--limit', 'ten'], /--limit needs a positive whole number, got "ten"/],
      [['list', '--status', 'done'], /--status done is not a status; use one of pending, in_progress/],
      [['start', '--resume=1,x'], /--resume=1,x must be a comma-separated list of task ids/],
      [['show'], /missing required argument 'id'/],
    ];
    for (const [args, message] of cases) {
      const r = ws.cli(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(message);
    }
  });

  it('config errors name the key path and exit 2', () => {
    const ws = new Workspace(tempDir());
    const cases: [unknown, RegExp][] = [
      [{ concurency: 4 }, /concurency: unknown key/],
      [{ limits: { stageAttempt: 3 } }, /limits\.stageAttempt: unknown key/],
      [{ concurrency: 'four' }, /concurrency: .*expected number/],
      [{ approvals: { plan: 'sometimes' } }, /approvals\.plan: .*"manual"\|"auto"|approvals\.plan: .*manual/],
      [{ heartbeat: { staleAfter: '10 minutes' } }, /heartbeat\.staleAfter: "10 minutes" is not a duration; write it like "30s"/],
      [{ stages: { plan: { run: [] } } }, /stages\.plan/],
      [[1, 2], /must hold an object of settings, not an array/],
    ];
    for (const [config, message] of cases) {
      writeFileSync(path.join(ws.dir, 'cairn.config.json'), JSON.stringify(config));
      for (const verb of [['list'], ['start']]) {
        const r = ws.cli(verb);
        expect({ config, verb, code: r.code }).toEqual({ config, verb, code: 2 });
        expect(r.stderr).toMatch(message);
        expect(r.stderr).toContain('cairn.config.json');
      }
    }
    writeFileSync(path.join(ws.dir, 'cairn.config.json'), '{"concurrency": 4,');
    const broken = ws.cli(['list']);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/cairn\.config\.json is not valid JSON/);
    const missing = ws.cli(['--config', 'nope.yaml', 'list']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/config file .*nope\.yaml does not exist/);
  });

  it('YAML config works and its errors name the key path too', () => {
    const ws = new Workspace(tempDir());
    writeFileSync(path.join(ws.dir, 'cairn.config.yaml'), 'concurrency: 2\nlimits:\n  reviewCycles: -1\n');
    const r = ws.cli(['list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/limits\.reviewCycles: .*>=0/);
    writeFileSync(path.join(ws.dir, 'cairn.config.yaml'), 'concurrency: 2\napprovals:\n  plan: auto\n');
    ws.createDataDir(); // a read verb refuses a data directory that does not exist
    expect(ws.cli(['list']).code).toBe(0);
  });

  it('`cairn start` without stage programs refuses to start and says how to configure them', () => {
    const ws = new Workspace(tempDir());
    const r = ws.cli(['start']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no program is configured for stages plan, implement, review, verify/);
    expect(r.stderr).toMatch(/examples\/cairn\.config\.json is a working example/);
  });

  it('a database file that is not SQLite is refused by name and left untouched', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    mkdirSync(ws.dataDir, { recursive: true });
    const garbage = 'this is not a database, it is my notes\n'.repeat(200);
    writeFileSync(ws.dbFile, garbage);
    for (const args of [['list'], ['show', '1'], ['submit', 'x'], ['start']]) {
      const r = ws.cli(args);
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
      expect(r.stderr).toContain(`${ws.dbFile} is not a SQLite database`);
      expect(r.stderr).toMatch(/Move it aside/);
    }
    expect(readFileSync(ws.dbFile, 'utf8')).toBe(garbage);
  });

  it('a missing executor file and an executor that prints garbage fail the task with a message naming the problem', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig(
      { approvals: { plan: 'auto', implementation: 'auto' }, limits: { stageAttempts: 1 }, stages: { plan: { run: ['./stages/missing.sh'] } } as never },
    );
    const daemon = ws.startDaemon();
    try {
      const id = ws.submit('no plan program');
      await waitFor(() => ws.show(id).state === 'failed', { what: 'failed' });
      const error = ws.show(id).error_details;
      expect(error).toMatchObject({ stage: 'plan', reason: 'spawn' });
      expect(error.message).toContain(path.join(ws.dir, 'stages', 'missing.sh'));
      expect(error.message).toMatch(/no such file/);
    } finally {
      await daemon.kill('SIGTERM');
    }

    const ws2 = new Workspace(tempDir());
    ws2.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' }, limits: { stageAttempts: 1 } }, { review: { REVIEW_VERDICT: 'garbage' } });
    const daemon2 = ws2.startDaemon();
    try {
      const id = ws2.submit('garbage review');
      await waitFor(() => ws2.show(id).state === 'failed', { what: 'failed' });
      const shown = ws2.show(id);
      expect(shown.error_details).toMatchObject({ stage: 'review', reason: 'output' });
      expect(shown.error_details.message).toMatch(/review printed no verdict; it must print \{"verdict":"approve"\|"request_changes"/);
      expect(shown.error_details.message).toContain('LGTM!!! <html>');
      // Earlier outputs are intact.
      expect(shown.outputs.implementation).toEqual({ stage: 'implement', attempt: 1 });
    } finally {
      await daemon2.kill('SIGTERM');
    }
  });
});
