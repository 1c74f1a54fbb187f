import { describe, expect, it } from 'vitest';
import { openCairn } from '../src/index.js';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

describe('decisions and insights', () => {
  it('`cairn note` records them with the task and `cairn show` lists them', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const id = ws.submit('choose a database');
    const d = ws.cli(['note', String(id), '--decision', 'use SQLite', '--rationale', 'no server to run', '--impact', 'high', '--by', 'ann']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/decision recorded with task 1/);
    expect(ws.cli(['note', String(id), '--insight', 'WAL doubles write speed', '--category', 'perf']).code).toBe(0);
    const notes = ws.show(id).notes;
    expect(notes).toEqual([
      expect.objectContaining({ kind: 'decision', text: 'use SQLite', rationale: 'no server to run', impact: 'high', source: 'cli', by: 'user:ann' }),
      expect.objectContaining({ kind: 'insight', text: 'WAL doubles write speed', category: 'perf', source: 'cli' }),
    ]);
    expect(ws.cli(['show', String(id)]).stdout).toMatch(/decision: use SQLite \(because no server to run; impact high\)/);
    const bad: [string[], RegExp][] = [
      [['note', String(id)], /exactly one of --decision TEXT or --insight TEXT/],
      [['note', String(id), '--decision', 'a', '--insight', 'b'], /exactly one of/],
      [['note', String(id), '--decision', 'a', '--category', 'x'], /--category goes with --insight/],
      [['note', String(id), '--decision', '  '], /the decision is empty/],
    ];
    for (const [args, message] of bad) {
      const r = ws.cli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(ws.cli(['note', '99', '--insight', 'x']).code).toBe(1);
    expect(ws.show(id).notes.length).toBe(2);
  });

  it('a stage whose JSON output has decisions or insights arrays has them recorded with the task and stage', async () => {
    const dataDir = tempDir();
    const cairn = await openCairn({
      dataDir,
      config: { approvals: { plan: 'auto', implementation: 'auto' } },
      executors: {
        plan: async () => ({
          steps: ['a'],
          decisions: [{ decision: 'split the module', rationale: 'too big', impact: 'medium' }, 'keep the API', { nothing: 'here' }],
          insights: [{ insight: 'tests are slow', category: 'ci' }],
        }),
        implement: async () => ({ insights: ['found dead code'] }),
        review: async () => ({ verdict: 'approve', decisions: 'not an array: ignored' }),
        verify: async () => 'ok',
      },
    });
    const task = await cairn.submit({ request: 'refactor' });
    await cairn.start({ pollMs: 10 });
    await waitFor(async () => (await cairn.get(task.id)).state === 'completed', { what: 'completed' });
    const notes = await cairn.store.listNotes({ taskId: task.id });
    await cairn.stop();
    expect(notes.map((n) => [n.kind, n.text, n.stage, n.attempt, n.source, n.rationale, n.category])).toEqual([
      ['decision', 'split the module', 'plan', 1, 'stage', 'too big', null],
      ['decision', 'keep the API', 'plan', 1, 'stage', null, null],
      ['insight', 'tests are slow', 'plan', 1, 'stage', null, 'ci'],
      ['insight', 'found dead code', 'implement', 1, 'stage', null, null],
    ]);
  });
});
