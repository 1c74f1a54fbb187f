/**
 * `cairn migrate-store --from sqlite:PATH --to postgres://…`: a SQLite database with a few hundred
 * tasks in every kind of state is copied, and `show --json`, `history --json` and `list --json` print
 * the same bytes on both sides for every task, and `cairn state get/list/checkpoints` the same state
 * keys; a non-empty target is refused unless --force; a daemon still running on the source is refused;
 * the verification catches a copy that differs.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import * as history from '../src/cli/history.js';
import * as list from '../src/cli/list.js';
import * as show from '../src/cli/show.js';
import type { GlobalOptions, Output } from '../src/cli/context.js';
import { defaultConfig } from '../src/config.js';
import { thisHost } from '../src/process/sessions.js';
import { Engine } from '../src/engine/engine.js';
import { StoreError } from '../src/errors.js';
import { SqliteStateBackend } from '../src/state/sqliteState.js';
import { copyRows, verifyCopy } from '../src/migrateStore/copyStore.js';
import { openPostgresStore, type PostgresStore } from '../src/store/postgres.js';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/store.js';
import { CAIRN_BIN } from './helpers/cairnProcess.js';
import { historyJsonOf, showJsonOf } from './helpers/printedJson.js';
import { adminQuery, dropTestSchemas, newTestSchema, schemaUrl } from './helpers/postgres.js';
import { tempDir } from './helpers/tmp.js';

const T0 = 1_700_000_000_000;
let now = T0;
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

afterAll(async () => {
  await dropTestSchemas();
});

/** Builds a SQLite database holding `count` tasks across every state, with dependencies, notes, leases and sessions. */
async function buildSource(count: number): Promise<{ dir: string; file: string; ids: number[] }> {
  const dir = tempDir();
  const file = path.join(dir, 'state', 'cairn.db');
  const store = openSqliteStore(file, { durability: 'normal' });
  const auto = new Engine(store, defaultConfig({ approvals: { plan: 'auto', implementation: 'auto' }, limits: { stageAttempts: 2 } }), () => now);
  const manual = new Engine(store, defaultConfig({}), () => now);
  await store.createSession({ id: 'old-daemon', pid: 999_999, host: thisHost, at: now });
  const step = async (engine: Engine, id: number, ok: boolean, output: unknown) => {
    const claim = await store.claimRun(id, 'old-daemon', now, 60_000);
    if (!claim) throw new Error(`task ${id}: nothing to claim`);
    now += 7;
    const event = ok
      ? { type: 'STAGE_SUCCEEDED' as const, stage: claim.run.stage, attempt: claim.run.attempt, output, at: now }
      : { type: 'STAGE_FAILED' as const, stage: claim.run.stage, attempt: claim.run.attempt, reason: 'exit' as const, message: 'exit 3', exitCode: 3, at: now };
    const after = (await engine.recordStageResult(id, event, 'daemon:old', claim.lease.token)).task;
    if (!ok) now += 60_000; // past the retry's backoff
    return after;
  };
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    now += 13;
    const kind = i % 8;
    const engine = kind === 2 || kind === 3 ? manual : auto;
    const deps = i > 10 && i % 5 === 0 ? [ids[i - 3], ids[i - 7]] : [];
    const priority = (['high', 'medium', 'low'] as const)[i % 3];
    const { id } = await engine.submit({ request: `task ${i}: ünïcødé "quoted" ${'x'.repeat(i % 40)}`, priority, tags: [`t${i % 4}`, 'all'], dependsOn: deps }, `user:u${i % 3}`);
    ids.push(id);
    if (kind === 0) continue; // pending
    if (deps.length) continue;
    await engine.start(id, 'daemon:old');
    if (kind === 1) {
      // completed, with outputs of every shape
      await step(engine, id, true, { steps: [i, 'two'], z: null, a: { nested: true } });
      await step(engine, id, true, `implemented ${i}`);
      await step(engine, id, true, { verdict: 'approve', comments: 'ok' });
      await step(engine, id, true, 'verified');
    } else if (kind === 2) {
      await step(engine, id, true, { plan: i }); // waiting at the plan gate
      if (i % 16 === 2) await engine.approve(id, 'ann', 'go');
    } else if (kind === 3) {
      await step(engine, id, true, { plan: i });
      await engine.reject(id, 'not like this', 'bob');
    } else if (kind === 4) {
      await step(engine, id, false, null);
      await step(engine, id, false, null); // failed after two attempts
    } else if (kind === 5) {
      await engine.cancel(id, 'carol', 'no longer needed');
    } else if (kind === 6) {
      await step(engine, id, true, { plan: i });
      await step(engine, id, true, 'impl');
      await engine.rewind(id, 'after_planning', 'dave');
      await engine.note(id, { kind: 'decision', text: `rewound ${i}`, rationale: 'try again', impact: 'high', category: null }, 'dave');
    } else {
      await store.claimRun(id, 'old-daemon', now, 60_000); // running when the daemon died: leased, resumable
      await store.recordRunProcess(id, 'plan', 1, 4242);
    }
  }
  await store.addNotes([
    { taskId: ids[1], scope: null, kind: 'insight', text: 'indexes matter', rationale: null, impact: null, category: 'perf', stage: null, attempt: null, source: 'cli', actor: 'ann', at: now },
    { taskId: null, scope: 'experiment-7', kind: 'insight', text: 'kept for a scope', rationale: null, impact: null, category: null, stage: null, attempt: null, source: 'import', actor: 'import', at: now },
  ]);
  await auto.submitOnce({ source: 'inbox', key: 'sha-abc' }, [{ request: 'from the inbox' }], 'inbox');
  ids.push(...(await store.findIntake({ source: 'inbox', key: 'sha-abc' }))!);
  await store.createSession({ id: 'stopped-daemon', pid: 1, host: 'elsewhere', at: now });
  await store.endSession('stopped-daemon', 'stopped', now + 5);
  // State keys in the same file, through the real backend: values of every shape, a legacy zone-less
  // stamp, a key that sorts differently by collation, checkpoints and a namespace with only a checkpoint.
  let stateMs = Date.UTC(2026, 0, 1);
  const state = new SqliteStateBackend(store.db, file, null, () => (stateMs += 1000));
  await state.set('task-1', 'phase', 'building');
  await state.set('task-1', 'plan', { steps: ['a', 'b'], estimate: 2.5, done: false, owner: null });
  await state.set('task-1', 'Zed', 'ünïcødé ✓ "quoted"');
  await state.checkpoint('task-1', 'after_planning');
  await state.set('task-1', 'phase', 'testing');
  await state.importNamespace({ ns: 'legacy', entries: [{ key: 'current_phase', value: 'review', updatedAt: '2026-01-01T10:00:00' }], checkpoints: [] });
  await state.checkpoint('only-checkpoint', 'empty');
  await store.close();
  writeFileSync(path.join(dir, 'cairn.config.json'), '{}');
  return { dir, file, ids };
}

function migrate(dir: string, args: string[]) {
  const r = spawnSync(process.execPath, [CAIRN_BIN, 'migrate-store', ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, CAIRN_DATABASE_URL: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a read verb in this process, as `cairn VERB … --json` would, and returns what it printed. */
async function printed(verb: (io: Output) => Promise<void>): Promise<string> {
  let out = '';
  await verb({ out: (t) => (out += t), err: () => undefined });
  return out;
}

/** What `show ID --json` and `history ID --json` print for task `id`, from an open store, run with `dataDir`. */
async function printedFrom(store: Store, id: number, dataDir: string): Promise<{ show: string; history: string }> {
  return { show: await showJsonOf(store, id, dataDir), history: await historyJsonOf(store, id) };
}

function cliJson(dir: string, args: string[]) {
  const r = spawnSync(process.execPath, [CAIRN_BIN, ...args, '--json'], { cwd: dir, encoding: 'utf8', timeout: 30_000, env: { ...process.env, CAIRN_DATABASE_URL: '' } });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

async function opened<T extends Store>(store: Promise<T> | T): Promise<T> {
  const s = await store;
  closers.push(() => s.close());
  return s;
}

describe('migrate-store', () => {
  it('copies a few hundred tasks; show, history and list print the same on both sides; refuses a non-empty target unless --force', { timeout: 120_000 }, async () => {
    const { dir, file, ids } = await buildSource(300);
    const url = schemaUrl(await newTestSchema('move'));

    const first = migrate(dir, ['--from', `sqlite:${path.relative(dir, file)}`, '--to', url, '--json']);
    expect(first.code, first.stderr).toBe(0);
    const report = JSON.parse(first.stdout);
    expect(report.tables.tasks).toBe(ids.length);
    expect(report.tasks_verified).toBe(ids.length);
    expect(report.tables.notes).toBeGreaterThan(30);
    expect(report.tables.sessions).toBe(2);
    expect(report.tables.intake_keys).toBe(1);
    expect(report.tables.kv_entries).toBe(4);
    expect(report.tables.kv_checkpoints).toBe(2);
    expect(report.skipped).toEqual([]);
    expect(first.stderr).not.toContain('not copied');

    const sqliteSide: GlobalOptions = { config: path.join(dir, 'cairn.config.json'), dataDir: path.join(dir, 'state') };
    const pgSide: GlobalOptions = { config: path.join(dir, 'cairn.config.json'), database: url };
    // Every task, read from one open store per side (1,200 store opens took most of this test's time).
    const sides = [openSqliteStore(file), await openPostgresStore(url)];
    const both: Record<number, { show: string; history: string }[]> = {};
    try {
      for (const id of ids) {
        // Both sides run with the data directory beside the config file (dir/state): the same log paths.
        both[id] = [await printedFrom(sides[0], id, path.join(dir, 'state')), await printedFrom(sides[1], id, path.join(dir, 'state'))];
        expect(both[id][1].show, `show ${id}`).toBe(both[id][0].show);
        expect(both[id][1].history, `history ${id}`).toBe(both[id][0].history);
      }
    } finally {
      for (const s of sides) await s.close();
    }
    // The verbs print exactly that, each opening its store as the CLI does, for tasks of every kind
    // (i % 8 above) on both sides.
    for (const id of [...ids.slice(0, 17), ids[ids.length - 1]]) {
      for (const [i, side] of [sqliteSide, pgSide].entries()) {
        expect(await printed((io) => show.run(String(id), { json: true }, side, io)), `show ${id}`).toBe(both[id][i].show);
        expect(await printed((io) => history.run(String(id), { json: true }, side, io)), `history ${id}`).toBe(both[id][i].history);
      }
    }
    for (const filter of [{}, { status: 'failed' }, { tag: 't2' }, { resumable: true }]) {
      const [a, b] = [await printed((io) => list.run({ ...filter, json: true }, sqliteSide, io)), await printed((io) => list.run({ ...filter, json: true }, pgSide, io))];
      expect(b).toBe(a);
      expect(JSON.parse(b).length).toBeGreaterThan(0);
    }
    // And through the real binary, for a few tasks of different kinds.
    for (const id of [ids[1], ids[4], ids[7]]) {
      expect(cliJson(dir, ['show', String(id), '--database', url])).toBe(cliJson(dir, ['show', String(id)]));
      expect(cliJson(dir, ['history', String(id), '--database', url])).toBe(cliJson(dir, ['history', String(id)]));
    }

    // The state keys arrived: the PostgreSQL store keeps its state in its own schema by default.
    for (const args of [
      ['state', 'get', 'phase', '--ns', 'task-1'],
      ['state', 'get', 'plan', '--ns', 'task-1'],
      ['state', 'list', '--ns', 'task-1'],
      ['state', 'list', '--ns', 'legacy'],
      ['state', 'checkpoints', '--ns', 'task-1'],
      ['state', 'checkpoints', '--ns', 'only-checkpoint'],
    ]) {
      expect(cliJson(dir, [...args, '--database', url]), args.join(' ')).toBe(cliJson(dir, args));
    }
    expect(JSON.parse(cliJson(dir, ['state', 'get', 'phase', '--ns', 'task-1', '--database', url])).value).toBe('testing');
    expect(JSON.parse(cliJson(dir, ['state', 'list', '--ns', 'legacy', '--database', url]))[0].updated_at).toBe('2026-01-01T10:00:00');

    const again = migrate(dir, ['--from', `sqlite:${file}`, '--to', url]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`is not empty (${ids.length} tasks`);
    expect(again.stderr).toContain('--force');
    const forced = migrate(dir, ['--from', `sqlite:${file}`, '--to', url, '--force', '--json']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ tables: report.tables, replaced: { tasks: ids.length } });
    const target = await opened(openPostgresStore(url));
    expect((await target.listTasks()).length).toBe(ids.length);
    // Ids go on where the copy left off.
    const next = await new Engine(target, defaultConfig({})).submit({ request: 'after the move' }, 'user:test');
    expect(next.id).toBe(Math.max(...ids) + 1);
  });

  it('refuses a source a daemon still runs on, and a source file that does not exist', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'cairn.db');
    const store = openSqliteStore(file);
    await store.createSession({ id: 'live', pid: 1, host: 'another-machine', at: Date.now() });
    await store.close();
    const url = schemaUrl(await newTestSchema('live'));
    const refused = migrate(dir, ['--from', `sqlite:${file}`, '--to', url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`a daemon is running on ${file}: session live (pid 1 on another-machine)`);
    expect(await adminQuery('SELECT count(*)::int AS n FROM tasks', [], new URL(url).searchParams.get('schema')!)).toEqual([{ n: 0 }]);
    const missing = migrate(dir, ['--from', 'sqlite:nope.db', '--to', url]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`there is no SQLite database at ${path.join(dir, 'nope.db')}`);
    expect(migrate(dir, ['--from', 'mysql://x', '--to', url]).code).toBe(2);
  });

  it('the verification finds a copy that differs, by task', async () => {
    const { file } = await buildSource(24);
    const source: SqliteStore = await opened(openSqliteStore(file));
    const schema = await newTestSchema('verify');
    const target: PostgresStore = await opened(openPostgresStore(schemaUrl(schema)));
    const { tables } = await copyRows(source, target, { replace: false });
    expect(await verifyCopy(source, target, tables)).toBe(25);
    const tamper = (from: string, to: string) => adminQuery('UPDATE transitions SET event = replace(event, $1, $2) WHERE task_id = 2 AND seq = 2', [from, to], schema);
    await tamper('"type":"START"', '"type":"START","forged":true');
    const error = await verifyCopy(source, target, tables).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toMatch(/task 2: (history|show) differs/);
    await tamper('"type":"START","forged":true', '"type":"START"');
    expect(await verifyCopy(source, target, tables)).toBe(25);
    await adminQuery('DELETE FROM notes WHERE task_id IS NULL', [], schema);
    await expect(verifyCopy(source, target, tables)).rejects.toThrow(/notes: \d+ rows in the source, \d+ in the target/);
    await adminQuery("INSERT INTO notes (task_id, scope, kind, text, source, actor, at) SELECT NULL, 'experiment-7', 'insight', 'kept for a scope', 'import', 'import', 0", [], schema);
    expect(await verifyCopy(source, target, tables)).toBe(25);
    // A state value changed in the copy: same count, different rows.
    await adminQuery(`UPDATE kv_entries SET value = '"forged"' WHERE ns = 'task-1' AND key = 'phase'`, [], schema);
    await expect(verifyCopy(source, target, tables)).rejects.toThrow(/kv_entries: the rows differ/);
  });
});
