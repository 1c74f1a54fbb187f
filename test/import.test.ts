import { cpSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { replayHistory } from '../src/engine/replay.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

// A copy of ../shared/fixtures/legacy, kept in the repo so a clone alone can run the tests.
const FIXTURES = path.resolve(import.meta.dirname, 'fixtures', 'legacy');

/** A workspace with its own copy of one fixture (the originals are read-only). */
function withFixture(name: string): { ws: Workspace; copy: string } {
  const ws = new Workspace(tempDir());
  ws.writeConfig();
  const copy = path.join(ws.dir, 'legacy', name);
  cpSync(path.join(FIXTURES, name), copy, { recursive: true });
  return { ws, copy };
}

async function expectReplayable(ws: Workspace) {
  const store = openSqliteStore(ws.dbFile);
  try {
    for (const task of await store.listTasks()) expect(replayHistory(await store.getHistory(task.id))).toEqual(task.snapshot);
  } finally {
    await store.close();
  }
}

describe('cairn import', () => {
  it('imports the orchestrator database into matching states, once; in-progress rows are resumable', async () => {
    const { ws, copy } = withFixture('orchestrator-tasks.db');
    const first = ws.cli(['import', copy, '--json']);
    expect(first.code, first.stderr).toBe(0);
    const report = JSON.parse(first.stdout);
    expect(report.imported.map((i: any) => i.taskId)).toEqual([1, 2, 3, 4, 5]);
    expect(report.skipped).toEqual([]);
    expect(readdirSync(report.archivedTo)).toEqual(['orchestrator-tasks.db']);

    const tasks = ws.json<any[]>(['list']);
    expect(tasks.map((t) => [t.request, t.state, t.status])).toEqual([
      ['Add authentication', 'completed', 'completed'],
      ['Fix flaky upload test', 'implementing', 'in_progress'],
      ['Rewrite billing module', 'plan_awaiting_approval', 'awaiting_approval'],
      ['Remove dead feature flag', 'failed', 'failed'],
      ['Add dark mode', 'planning', 'in_progress'],
    ]);
    const done = ws.show(1);
    expect(done.outputs).toEqual({
      plan: '1. add JWT middleware\n2. login route',
      implementation: 'auth.ts written',
      review: { verdict: 'approve', comments: 'LGTM' },
      verification: '12 passed',
    });
    expect(done.approvals.map((a: any) => [a.gate, a.decision, a.by, a.at])).toEqual([
      ['plan', 'approved', 'korety', '2026-02-05T10:10:00.000Z'],
      ['implementation', 'approved', 'korety', '2026-02-05T11:00:00.000Z'],
    ]);
    expect(done.checkpoints.map((c: any) => c.name)).toEqual([
      'workflow_start',
      'after_planning',
      'start_implementation',
      'after_implementation',
      'after_review',
      'after_verification',
    ]);
    expect(done.created_at).toBe('2026-02-05T10:00:00.000Z');
    expect(ws.history(1)[0].event.imported_from).toMatchObject({ kind: 'orchestrator-tasks', id: 1, checkpoints: [{ name: 'workflow_start' }, { name: 'after_planning' }, { name: 'after_verification' }] });
    expect(ws.show(4).error_details).toMatchObject({ stage: 'verify', message: 'verification failed: 3 tests' });
    expect(ws.show(5).feedback).toEqual([expect.objectContaining({ source: 'plan_rejected', text: 'too broad, split it' })]);
    expect(ws.json<any[]>(['list-resumable']).map((t) => [t.id, t.stage])).toEqual([
      [2, 'implement'],
      [5, 'plan'],
    ]);
    await expectReplayable(ws);

    const second = ws.cli(['import', copy]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/0 imported, 5 skipped/);
    expect(second.stdout).toMatch(/orchestrator task 2 \(in_progress, implementing\): skipped, imported before as task 2/);
    expect(ws.json<any[]>(['list']).length).toBe(5);

    // An imported interrupted task really resumes: its stage runs again with attempt + 1.
    const daemon = ws.startDaemon();
    try {
      await waitFor(() => ws.show(2).state === 'implementation_awaiting_approval', { what: 'task 2 resumed and implemented' });
      expect(ws.show(2).attempts.implement).toBe(2);
      expect(ws.stageInput(2, 'implement', 2).outputs.plan).toBe('retry with backoff');
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('imports an experiment: tasks tagged and linked, decisions and insights as notes, once', async () => {
    const { ws, copy } = withFixture('experiment');
    const id = '20251218_1900_border_removal_preprocessing';
    const first = ws.cli(['import', copy]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/4 imported, 0 skipped/);
    const tasks = ws.json<any[]>(['list', '--tag', id]);
    expect(tasks.map((t) => [t.request, t.state, t.priority])).toEqual([
      ['Collect scanned receipts with borders', 'completed', 'high'],
      ['Implement border detection', 'completed', 'high'],
      ['Evaluate OCR accuracy after border removal', 'planning', 'medium'],
    ]);
    expect(ws.show(2).depends_on).toEqual([1]);
    expect(ws.show(3).depends_on).toEqual([2]);
    expect(ws.json<any[]>(['list-resumable']).map((t) => t.id)).toEqual([3]);
    expect(ws.show(3).notes).toEqual([
      expect.objectContaining({ kind: 'insight', text: 'Border removal helps most on thermal-paper receipts', category: 'data', impact: 'medium', source: 'import' }),
    ]);
    const store = openSqliteStore(ws.dbFile);
    try {
      const notes = await store.listNotes({ scope: id });
      expect(notes.map((n) => [n.kind, n.text, n.rationale, n.impact])).toEqual([
        ['decision', 'Use morphological closing before contour detection', 'Thin borders survive plain thresholding', 'high'],
        ['insight', 'Border removal helps most on thermal-paper receipts', null, 'medium'],
      ]);
      expect(new Date(notes[0].at).toISOString()).toBe('2025-12-18T00:00:00.000Z');
    } finally {
      await store.close();
    }
    await expectReplayable(ws);

    const second = ws.cli(['import', copy]);
    expect(second.stdout).toMatch(/0 imported, 4 skipped/);
    expect(ws.json<any[]>(['list']).length).toBe(3);
  });

  it('imports the JSON key-value backend as namespaces with keys, timestamps and checkpoints, once', () => {
    const { ws, copy } = withFixture('json-backend');
    const first = ws.cli(['import', copy]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/\+ key-value namespace workflow-123 \(3 keys, 1 checkpoints\)/);
    const keys = ws.json<any[]>(['state', 'list', '--ns', 'workflow-123']);
    expect(keys.map((k) => [k.key, k.value])).toEqual([
      ['completed_tasks', ['scout', 'plan']],
      ['current_phase', 'building'],
      ['metadata', { timestamp: '2024-01-01', user: 'dev' }],
    ]);
    expect(keys.map((k) => k.updated_at)).toEqual(['2026-01-01T10:05:00', '2026-01-01T10:00:00', '2026-01-01T10:06:00']);
    expect(ws.json<any[]>(['state', 'checkpoints', '--ns', 'workflow-123']).map((c) => c.name)).toEqual(['after_planning']);
    const second = ws.cli(['import', copy]);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/0 imported, 1 skipped/);
    expect(second.stdout).toMatch(/namespace workflow-123 is already on sqlite state/);
  });

  it('imports a multi-agent session as a namespace with its checkpoints and an ended session record, once', () => {
    const { ws, copy } = withFixture('multi-agent-state');
    const first = ws.cli(['import', copy]);
    expect(first.code, first.stderr).toBe(0);
    const ns = 'multi-agent-session_20251014_173045';
    expect(ws.cli(['state', 'get', 'status', '--ns', ns]).stdout.trim()).toBe('active');
    expect(JSON.parse(ws.cli(['state', 'get', 'current_meeting', '--ns', ns, '--json']).stdout)).toMatchObject({
      value: { meeting_id: 'planning_20251014_173045', progress: '25%' },
    });
    const checkpoints = ws.json<any[]>(['state', 'checkpoints', '--ns', ns]);
    expect(checkpoints.map((c) => [c.name, c.keys])).toEqual([['checkpoint_20251014_180000', 4]]);
    expect(ws.cli(['state', 'restore', 'checkpoint_20251014_180000', '--ns', ns]).code).toBe(0);
    expect(ws.cli(['state', 'get', 'notes', '--ns', ns]).stdout.trim()).toBe('Periodic snapshot during heartbeat cycle');
    const store = openSqliteStore(ws.dbFile);
    return store
      .listSessions()
      .then((sessions) => {
        expect(sessions.find((s) => s.id === 'session_20251014_173045')).toMatchObject({ status: 'stopped', host: 'imported' });
        expect(ws.cli(['import', copy]).stdout).toMatch(/0 imported, 1 skipped/);
      })
      .finally(() => store.close());
  });

  it('killed after its last item, before copying the originals: the re-run imports nothing again and archives them once', () => {
    const { ws, copy } = withFixture('orchestrator-tasks.db');
    // Five items: the fifth passes the crash point after its commit, so the archive copy never starts.
    const killed = ws.cli(['import', copy, '--json'], { CAIRN_CRASH_AT: 'import-between-tasks', CAIRN_CRASH_AFTER: '4' });
    expect(killed.code).toBe(-1);
    expect(ws.json<any[]>(['list'])).toHaveLength(5);
    expect(existsSync(path.join(ws.dataDir, 'archive'))).toBe(false);

    const again = ws.cli(['import', copy, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const report = JSON.parse(again.stdout);
    expect(report.imported).toEqual([]);
    expect(report.skipped.map((s: any) => s.reason)).toEqual([1, 2, 3, 4, 5].map((id) => `imported before as task ${id}`));
    expect(readdirSync(report.archivedTo)).toEqual(['orchestrator-tasks.db']);

    const third = JSON.parse(ws.cli(['import', copy, '--json']).stdout);
    expect(third.archivedTo).toBeNull();
    expect(readdirSync(path.join(ws.dataDir, 'archive'))).toHaveLength(1);
    expect(ws.json<any[]>(['list'])).toHaveLength(5);
  });

  it('--dry-run reports and writes nothing; a path with nothing to import is an error', () => {
    const { ws, copy } = withFixture('orchestrator-tasks.db');
    const dry = ws.cli(['import', copy, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would import from .*5 imported, 0 skipped; nothing was written \(--dry-run\)/s);
    expect(ws.json<any[]>(['list'])).toEqual([]);
    expect(existsSync(path.join(ws.dataDir, 'archive'))).toBe(false);

    const missing = ws.cli(['import', path.join(ws.dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope does not exist/);
    const nothing = ws.cli(['import', ws.recordDir]);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toMatch(/holds nothing cairn can import/);
  });
});
