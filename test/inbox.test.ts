import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

function inboxOf(ws: Workspace) {
  const dir = path.join(ws.dataDir, 'inbox');
  return {
    dir,
    drop: (name: string, content: string) => writeFileSync(path.join(dir, name), content),
    accepted: () => (existsSync(path.join(dir, 'accepted')) ? readdirSync(path.join(dir, 'accepted')).sort() : []),
    rejected: () => (existsSync(path.join(dir, 'rejected')) ? readdirSync(path.join(dir, 'rejected')).sort() : []),
    reason: (name: string) => readFileSync(path.join(dir, 'rejected', `${name}.error.txt`), 'utf8'),
    left: () => readdirSync(dir).filter((f) => f !== 'accepted' && f !== 'rejected'),
  };
}

/** Manual gates keep tasks parked after planning, so the test sees what the inbox created. */
function workspace(): Workspace {
  const ws = new Workspace(tempDir());
  ws.writeConfig({ concurrency: 8 });
  return ws;
}

describe('the inbox', () => {
  it('turns valid JSON, YAML and markdown files into tasks and moves them to accepted/ with the ids in the name', async () => {
    const ws = workspace();
    const daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/watching the inbox/);
      const inbox = inboxOf(ws);
      inbox.drop('one.json', JSON.stringify({ request: 'from json', priority: 'high', tags: ['a'] }));
      await waitFor(() => inbox.accepted().length === 1, { what: 'one.json accepted' });
      // One at a time, so the ids are predictable; files dropped together are taken in in any order.
      const more: [string, string][] = [
        ['many.json', JSON.stringify([{ request: 'first of two' }, { request: 'second of two', depends_on: [1] }])],
        ['task.yaml', 'request: from yaml\npriority: low\ntags: [y]\n'],
        ['note.md', '---\npriority: high\ntags: [docs, md]\ndepends_on: [1]\n---\n# Write the guide\n\nExplain the inbox.\n'],
      ];
      for (const [i, [name, content]] of more.entries()) {
        inbox.drop(name, content);
        await waitFor(() => inbox.accepted().length === i + 2, { what: `${name} accepted` });
      }
      expect(inbox.accepted()).toEqual(['many.task-2-3.json', 'note.task-5.md', 'one.task-1.json', 'task.task-4.yaml']);
      expect(inbox.left()).toEqual([]);
      const tasks = ws.json<any[]>(['list']);
      expect(tasks.map((t) => [t.id, t.request, t.priority, t.tags])).toEqual([
        [1, 'from json', 'high', ['a']],
        [2, 'first of two', 'medium', []],
        [3, 'second of two', 'medium', []],
        [4, 'from yaml', 'low', ['y']],
        [5, '# Write the guide\n\nExplain the inbox.', 'high', ['docs', 'md']],
      ]);
      expect(ws.show(5).depends_on).toEqual([1]);
      expect(ws.history(1)[0]).toMatchObject({ event: { type: 'SUBMIT' }, actor: 'inbox' });
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('moves invalid files to rejected/ with a <name>.error.txt naming the path and the reason, and carries on', async () => {
    const ws = workspace();
    const daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/watching the inbox/);
      const inbox = inboxOf(ws);
      const cases: [string, string, RegExp][] = [
        ['broken.json', '{"request": "x",', /not valid JSON/],
        ['empty.json', '[]', /empty list/],
        ['norequest.json', '{"priority": "high"}', /request: .*expected string/],
        ['badprio.json', '[{"request": "ok"}, {"request": "x", "priority": "urgent"}]', /\[1\]\.priority: /],
        ['typo.yaml', 'request: x\nprioritty: high\n', /unknown key\(s\) prioritty/],
        ['blank.md', '---\npriority: high\n---\n\n', /markdown body is empty/],
        ['notes.txt', 'hello', /only \.json, \.yaml, \.yml, \.md files are read/],
        ['ghost.json', '{"request": "needs a ghost", "depends_on": [999]}', /task 999 does not exist/],
      ];
      for (const [name, content] of cases) inbox.drop(name, content);
      inbox.drop('fine.json', '{"request": "still works"}');
      await waitFor(() => inbox.rejected().length === cases.length * 2 && inbox.accepted().length === 1, { what: 'all handled' });
      for (const [name, , reason] of cases) {
        const text = inbox.reason(name);
        expect(text).toContain(path.join(inbox.dir, name));
        expect(text).toMatch(reason);
      }
      expect(ws.json<any[]>(['list']).map((t) => t.request)).toEqual(['still works']);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('does not read a file while it is still being written', async () => {
    const ws = workspace();
    const daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/watching the inbox/);
      const inbox = inboxOf(ws);
      const fd = openSync(path.join(inbox.dir, 'slow.json'), 'w');
      writeSync(fd, '[{"request": "written ');
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 100));
        writeSync(fd, 'slowly ');
      }
      writeSync(fd, '"}]');
      closeSync(fd);
      await waitFor(() => inbox.accepted().length === 1, { what: 'accepted once complete' });
      expect(inbox.rejected()).toEqual([]);
      expect(ws.json<any[]>(['list']).map((t) => t.request)).toEqual(['written slowly slowly slowly slowly slowly']);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('takes in files that were there before the daemon started', async () => {
    const ws = workspace();
    const inbox = inboxOf(ws);
    mkdirSync(inbox.dir, { recursive: true });
    inbox.drop('early.json', '{"request": "dropped while no daemon ran"}');
    const daemon = ws.startDaemon();
    try {
      await waitFor(() => inbox.accepted().length === 1, { what: 'accepted' });
      expect(ws.show(1).request).toBe('dropped while no daemon ran');
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('a crash between the insert and the move never creates a task twice', async () => {
    const ws = workspace();
    const inbox = inboxOf(ws);
    mkdirSync(inbox.dir, { recursive: true });
    inbox.drop('once.json', '[{"request": "only once"}, {"request": "also once"}]');
    const crashing = ws.startDaemon([], { CAIRN_CRASH_AT: 'after-inbox-insert' });
    expect(await crashing.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(inbox.left()).toEqual(['once.json']);
    expect(ws.json<any[]>(['list']).length).toBe(2);

    const restarted = ws.startDaemon();
    try {
      await waitFor(() => inbox.accepted().length === 1, { what: 'moved after restart' });
      await restarted.waitForLog(/was taken in before \(tasks 1, 2\)/);
      expect(inbox.accepted()).toEqual(['once.task-1-2.json']);
      expect(ws.json<any[]>(['list']).map((t) => t.request)).toEqual(['only once', 'also once']);
    } finally {
      await restarted.kill('SIGTERM');
    }
  });

  it('a burst of 200 files becomes exactly 200 tasks', async () => {
    const ws = workspace();
    ws.writeConfig({ concurrency: 1, approvals: { plan: 'manual', implementation: 'manual' } }, { plan: { STAGE_SLEEP: '30' } });
    const daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/watching the inbox/);
      const inbox = inboxOf(ws);
      for (let i = 0; i < 200; i++) inbox.drop(`burst-${String(i).padStart(3, '0')}.json`, JSON.stringify({ request: `burst task ${i}` }));
      await waitFor(() => inbox.accepted().length === 200, { what: '200 accepted', timeoutMs: 30_000 });
      const requests = ws.json<any[]>(['list']).map((t) => t.request).sort();
      expect(requests).toEqual(Array.from({ length: 200 }, (_, i) => `burst task ${i}`).sort());
      expect(inbox.left()).toEqual([]);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('refuses symlinks, FIFOs and oversized files without reading them, and ignores temporary names', async () => {
    const ws = workspace();
    const daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/watching the inbox/);
      const inbox = inboxOf(ws);
      const outside = path.join(ws.dir, 'secret.json');
      writeFileSync(outside, '{"request": "read outside the inbox"}');
      symlinkSync(outside, path.join(inbox.dir, 'link.json'));
      execFileSync('mkfifo', [path.join(inbox.dir, 'pipe.json')]);
      writeFileSync(path.join(inbox.dir, 'huge.json'), `{"request": "${'x'.repeat(2 * 1024 * 1024)}"}`);
      inbox.drop('.hidden.json', '{"request": "hidden"}');
      inbox.drop('draft.json.tmp', '{"request": "draft"}');
      inbox.drop('-rf.json', '{"request": "leading dash is just a name"}');
      await waitFor(() => inbox.rejected().length === 6 && inbox.accepted().length === 1, { what: 'handled', timeoutMs: 15_000 });
      expect(inbox.reason('link.json')).toMatch(/symbolic link/);
      expect(inbox.reason('pipe.json')).toMatch(/not a regular file/);
      expect(inbox.reason('huge.json')).toMatch(/inbox files are at most 1048576 bytes/);
      expect(ws.json<any[]>(['list']).map((t) => t.request)).toEqual(['leading dash is just a name']);
      expect(inbox.left().sort()).toEqual(['.hidden.json', 'draft.json.tmp']);
      expect(readFileSync(outside, 'utf8')).toContain('read outside the inbox');
    } finally {
      await daemon.kill('SIGTERM');
    }
  });
});
