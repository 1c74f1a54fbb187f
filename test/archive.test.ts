/**
 * History archives (history.keepDays): 1,000 tasks finished long ago move with all their rows into
 * monthly archive databases; the live database no longer has them; `show/history --archived` return
 * them exactly as before. A crash between the copy and the delete neither loses nor doubles a task.
 */
import Database from 'better-sqlite3';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { withTaskStore } from '../src/cli/archivedTask.js';
import { run as history } from '../src/cli/history.js';
import { run as show } from '../src/cli/show.js';
import { defaultConfig } from '../src/config.js';
import { loadConfig } from '../src/loadConfig.js';
import { Heartbeat } from '../src/daemon/heartbeat.js';
import { Engine } from '../src/engine/engine.js';
import { copyDatabase } from '../src/snapshots/copyDatabase.js';
import { archiveOldTasks } from '../src/snapshots/historyArchive.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { Workspace } from './helpers/cairnProcess.js';
import { driveToCompletion } from './helpers/driveTask.js';
import { historyJsonOf, showJsonOf } from './helpers/printedJson.js';
import { tempDir } from './helpers/tmp.js';

const DAY = 86_400_000;
const JAN = Date.UTC(2026, 0, 10);
const FEB = Date.UTC(2026, 1, 10);
const NOW = Date.UTC(2026, 5, 1);
/** Tables that hold rows belonging to a task. */
const TASK_TABLES = ['transitions', 'checkpoints', 'stage_runs', 'notes', 'task_dependencies'];

/** Runs a CLI verb in this process (the same `run` a subprocess calls) and returns what it printed. */
async function capture(verb: typeof show, id: number, opts: Record<string, unknown>, global: { config: string; dataDir: string }): Promise<string> {
  let out = '';
  await verb(String(id), opts, global, { out: (t) => (out += t), err: () => undefined });
  return out;
}

function rowsFor(file: string, ids: number[]): Record<string, number> {
  const db = new Database(file, { readonly: true });
  try {
    const list = ids.join(', ');
    const counts: Record<string, number> = { tasks: db.prepare(`SELECT count(*) FROM tasks WHERE id IN (${list})`).pluck().get() as number };
    for (const t of TASK_TABLES) counts[t] = db.prepare(`SELECT count(*) FROM ${t} WHERE task_id IN (${list})`).pluck().get() as number;
    return counts;
  } finally {
    db.close();
  }
}

describe('history archives', () => {
  it('archives 1,000 old tasks: the live database is without them, `show/history --archived` return each unchanged, a crash mid-move is finished once', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ history: { keepDays: 30 }, durability: 'normal', snapshots: { drillEvery: null } });
    ws.createDataDir();
    // In this process the working directory is the repository's: name the data directory explicitly.
    const global = { config: path.join(ws.dir, 'cairn.config.json'), dataDir: ws.dataDir };
    const config = await loadConfig({ file: global.config, cwd: ws.dir, env: {} });
    const store = openSqliteStore(ws.dbFile, { durability: 'normal' });
    let now = JAN;
    const engine = new Engine(store, config, () => now);

    // 1,000 old tasks, half finished in January and half in February: most cancelled, every tenth
    // completed through all its stages, some with notes, some depending on one another.
    const old: number[] = [];
    for (let i = 0; i < 1000; i++) {
      now = (i < 500 ? JAN : FEB) + i * 1000;
      const dependsOn = i % 50 === 49 ? [old[i - 1]] : [];
      const id = (await engine.submit({ request: `old task ${i}`, tags: i % 7 === 0 ? ['seven'] : [], dependsOn }, 'test')).id;
      if (i % 10 === 0) {
        await driveToCompletion(engine, store, id);
        await engine.note(id, { kind: 'decision', text: `decided ${i}`, rationale: 'because', impact: null, category: null }, 'tester');
      } else {
        await engine.cancel(id, 'tester', `no longer needed ${i}`);
      }
      old.push(id);
    }
    // Kept live: a task that failed (it can still be retried), one finished recently, and an old one a live task depends on.
    now = JAN;
    const failed = (await engine.submit({ request: 'failed long ago' }, 'test')).id;
    await engine.start(failed, 'test');
    const claim = (await store.claimRun(failed, 'sess', now, 60_000))!;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const c = attempt === 1 ? claim : (await store.claimRun(failed, 'sess', now + attempt * 600_000, 60_000))!;
      now = now + attempt * 600_000;
      await engine.recordStageResult(failed, { type: 'STAGE_FAILED', stage: 'plan', attempt, reason: 'exit', message: 'no', exitCode: 1, signal: null, at: now }, 'daemon', c.lease.token);
    }
    expect((await store.getTask(failed))!.state).toBe('failed');
    now = JAN;
    const heldDep = (await engine.submit({ request: 'old, but a live task needs it' }, 'test')).id;
    await engine.cancel(heldDep, 'tester');
    now = NOW - DAY;
    const recent = (await engine.submit({ request: 'finished yesterday' }, 'test')).id;
    await engine.cancel(recent, 'tester');
    const dependent = (await engine.submit({ request: 'still pending', dependsOn: [heldDep] }, 'test')).id;

    // `show` of every task, `history` of every tenth, read from the open store (2,200 store opens, one
    // per verb call, took most of this test's time); the verbs themselves, each opening the database as
    // a CLI process does, print the same for `viaVerbs`, tasks of every kind.
    const sample = old.filter((_, i) => i % 10 === 3);
    const viaVerbs = [...old.slice(0, 14), old[49], old[50], old[503], old[510]];
    const before = new Map<number, [string, string]>();
    for (const id of old) before.set(id, [await showJsonOf(store, id, config.dataDir), sample.includes(id) ? await historyJsonOf(store, id) : '']);
    for (const id of viaVerbs) {
      expect(await capture(show, id, { json: true }, global), `show ${id}`).toBe(before.get(id)![0]);
      if (sample.includes(id)) expect(await capture(history, id, { json: true }, global), `history ${id}`).toBe(before.get(id)![1]);
    }
    const beforeArchive = path.join(ws.dir, 'before-archive.db');
    await copyDatabase(ws.dbFile, beforeArchive, 'normal');

    const heartbeat = new Heartbeat({ store, config, engine, logger: pino({ level: 'silent' }), now: () => now });
    now = NOW;
    /** Heartbeat cycles until one archives nothing; returns how many each archived. */
    const cycles = async () => {
      const moved: number[] = [];
      for (let i = 0; i < 20 && moved.at(-1) !== 0; i++) {
        const part = (await heartbeat.runCycle())!.parts.find((p) => p.name === 'history')!;
        expect(part.ok, part.error).toBe(true);
        moved.push(part.detail!.archived as number);
      }
      return moved;
    };
    // A few hundred per cycle, so a backlog never stalls the daemon for long.
    const moved = await cycles();
    expect(moved.reduce((a, b) => a + b, 0)).toBe(1000);
    expect(Math.max(...moved)).toBeLessThanOrEqual(250);

    const archiveDir = path.join(ws.dataDir, 'archive');
    expect(readdirSync(archiveDir).filter((f) => f.endsWith('.db')).sort()).toEqual(['history-2026-01.db', 'history-2026-02.db']);
    expect(statSync(archiveDir).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(archiveDir)) expect(statSync(path.join(archiveDir, f)).mode & 0o777, f).toBe(0o600);
    expect(rowsFor(ws.dbFile, old)).toEqual({ tasks: 0, transitions: 0, checkpoints: 0, stage_runs: 0, notes: 0, task_dependencies: 0 });
    expect((await store.listTasks()).map((t) => t.id).sort((a, b) => a - b)).toEqual([failed, heldDep, recent, dependent]);
    const archivedRows = (f: string) => rowsFor(path.join(archiveDir, f), old);
    const inArchives = [archivedRows('history-2026-01.db'), archivedRows('history-2026-02.db')];
    expect(inArchives.map((r) => r.tasks)).toEqual([500, 500]);
    expect(inArchives.reduce((sum, r) => sum + r.notes, 0)).toBe(100);
    expect(inArchives.reduce((sum, r) => sum + r.task_dependencies, 0)).toBe(20);

    // Each task found in its archive by the code `--archived` runs (withTaskStore), beside the open live store.
    const expectUnchanged = async (ids: number[]) => {
      for (const id of ids) {
        const [showBefore, historyBefore] = before.get(id)!;
        expect(await withTaskStore({ config, store }, id, true, (s) => showJsonOf(s, id, config.dataDir)), `show ${id}`).toBe(showBefore);
        if (sample.includes(id)) expect(await withTaskStore({ config, store }, id, true, (s) => historyJsonOf(s, id)), `history ${id}`).toBe(historyBefore);
      }
      for (const id of ids.filter((id) => viaVerbs.includes(id) || id === sample[0])) {
        const [showBefore, historyBefore] = before.get(id)!;
        expect(await capture(show, id, { json: true, archived: true }, global), `show --archived ${id}`).toBe(showBefore);
        if (sample.includes(id)) expect(await capture(history, id, { json: true, archived: true }, global), `history --archived ${id}`).toBe(historyBefore);
      }
    };
    await expectUnchanged(old);
    // Through the real binary too; and without --archived it says where the task went.
    const cli = ws.cli(['show', String(old[10]), '--archived', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout.trim()).toBe(before.get(old[10])![0]);
    const plain = ws.cli(['show', String(old[10])]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain(`task ${old[10]} is no longer in the live database: it finished long ago and was moved to ${path.join(archiveDir, 'history-2026-01.db')}; \`--archived\` reads it there`);
    expect(ws.cli(['history', '999999', '--archived']).stderr).toMatch(/task 999999 does not exist/);

    // A crash after the copies committed and before the live rows went: every task in both places.
    // The next run finishes the move once: nothing doubled in the archives, nothing left live.
    const archivedCounts = inArchives;
    const restore = new Database(beforeArchive, { readonly: true });
    await restore.backup(ws.dbFile);
    restore.close();
    expect(rowsFor(ws.dbFile, old).tasks).toBe(1000);
    await cycles();
    expect(rowsFor(ws.dbFile, old).tasks).toBe(0);
    expect([archivedRows('history-2026-01.db'), archivedRows('history-2026-02.db')]).toEqual(archivedCounts);
    await expectUnchanged(sample);
    await store.close();
    expect(existsSync(path.join(archiveDir, 'history-2026-03.db'))).toBe(false);
  }, 120_000);

  it('old tasks a live task depends on stay live, and do not hold up the ones after them', async () => {
    const dir = tempDir();
    const store = openSqliteStore(path.join(dir, 'cairn.db'), { durability: 'normal' });
    let now = JAN;
    const engine = new Engine(store, defaultConfig({}, dir), () => now);
    try {
      const ids: number[] = [];
      for (const request of ['needed a', 'needed b', 'free c', 'free d']) {
        const id = (await engine.submit({ request }, 'test')).id;
        await engine.cancel(id, 'tester');
        ids.push(id);
      }
      now = NOW;
      const live = (await engine.submit({ request: 'pending', dependsOn: ids.slice(0, 2) }, 'test')).id;
      const first = archiveOldTasks(store.db, path.join(dir, 'archive'), NOW, 30, 2);
      expect(first).toMatchObject({ archived: [ids[2], ids[3]], held: [ids[0], ids[1]] });
      expect((await store.listTasks()).map((t) => t.id)).toEqual([ids[0], ids[1], live]);
      // Once the dependent is archived too, what it needed follows.
      await engine.cancel(live, 'tester');
      expect(archiveOldTasks(store.db, path.join(dir, 'archive'), NOW + 40 * DAY, 30, 10).archived).toEqual([ids[0], ids[1], live]);
      expect(await store.listTasks()).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
