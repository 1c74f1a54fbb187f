/**
 * The SQLite store against real files: permissions, pragmas, migrations, atomic transitions, optimistic
 * concurrency across connections, leases and fencing, dispatch and resume queries, and the engine's
 * refusals. Tests that hold for both stores live in store.contract.test.ts, which runs on SQLite too.
 * No mocks: every test opens its own database under a fresh temp directory.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TaskState } from '../machines/task.machine.js';
import { defaultConfig, type ConfigFile } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { replayHistory } from '../src/engine/replay.js';
import { InvalidTransitionError, StageResultRefused, StoreError, TaskNotFoundError } from '../src/errors.js';
import { loadMigrations } from '../src/store/migrate.js';
import { openStore } from '../src/store/openStore.js';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.js';
import type { Store, TaskRecord } from '../src/store/store.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LEASE_MS = 60_000;
const T0 = 1_700_000_000_000;

let now = T0;
const clock = () => now;
const opened: Store[] = [];

beforeEach(() => {
  now = T0;
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
});

function dbFile(dir: string): string {
  return path.join(dir, 'cairn.db');
}

function open(file: string, durability?: 'full' | 'normal'): SqliteStore {
  const store = openSqliteStore(file, durability ? { durability } : {});
  opened.push(store);
  return store;
}

function engineFor(store: SqliteStore, config: ConfigFile = {}): Engine {
  return new Engine(store, defaultConfig(config, path.dirname(store.location)), clock);
}

/** The error opening `file` throws; fails the test if it opens. */
function openError(file: string): Error {
  try {
    open(file);
  } catch (e) {
    return e as Error;
  }
  throw new Error(`${file} opened, but it should have been refused`);
}

function modeOf(file: string): number {
  return statSync(file).mode & 0o777;
}

async function mustGet(store: SqliteStore, id: number): Promise<TaskRecord> {
  const task = await store.getTask(id);
  if (!task) throw new Error(`task ${id} is missing`);
  return task;
}

/** A new task moved to planning, its plan run waiting to be claimed. */
async function runningTask(engine: Engine): Promise<TaskRecord> {
  const created = await engine.submit({ request: 'leased' }, 'test');
  const { task } = await engine.start(created.id, 'test');
  return task;
}

/** Claims the task's next run for `session` and records its success with the lease token it got. */
async function succeedNextStage(engine: Engine, store: SqliteStore, id: number, output: unknown, session = 'sess-test') {
  const claim = await store.claimRun(id, session, now, LEASE_MS);
  if (!claim) throw new Error(`task ${id} has no claimable run`);
  now += 1;
  const event = { type: 'STAGE_SUCCEEDED' as const, stage: claim.run.stage, attempt: claim.run.attempt, output, at: now };
  return engine.recordStageResult(id, event, 'daemon:test', claim.lease.token);
}

/** Drives a task to `completed` through all four stages (the engine's config must auto-approve). */
async function complete(engine: Engine, store: SqliteStore, id: number): Promise<TaskRecord> {
  await engine.start(id, 'test');
  await succeedNextStage(engine, store, id, 'plan');
  await succeedNextStage(engine, store, id, 'impl');
  await succeedNextStage(engine, store, id, { verdict: 'approve', comments: 'ok' });
  const { task } = await succeedNextStage(engine, store, id, 'verified');
  expect(task.state).toBe('completed');
  return task;
}

/** The stored history must be a gap-free chain: seq 1..n, each transition starting where the last ended. */
function expectUnbrokenHistory(history: { seq: number; from: TaskState | null; to: TaskState }[], version: number) {
  expect(history.map((h) => h.seq)).toEqual(history.map((_, i) => i + 1));
  for (let i = 1; i < history.length; i++) expect(history[i].from).toBe(history[i - 1].to);
  // One version per transition: a lost update would leave the two out of step.
  expect(version).toBe(history.length);
}

describe('opening', () => {
  it('creates the data directory 0700 and the database, -wal and -shm files 0600 even with umask 000', async () => {
    const dir = path.join(tempDir(), 'data', 'nested');
    const file = dbFile(dir);
    const previous = process.umask(0);
    try {
      const store = open(file);
      const engine = engineFor(store);
      await engine.submit({ request: 'write something' }, 'test');
      expect(modeOf(dir)).toBe(0o700);
      expect(modeOf(path.dirname(dir))).toBe(0o700);
      expect(modeOf(file)).toBe(0o600);
      for (const sidecar of [`${file}-wal`, `${file}-shm`]) {
        expect(existsSync(sidecar), sidecar).toBe(true);
        expect(modeOf(sidecar) & 0o077, `${sidecar} mode ${modeOf(sidecar).toString(8)}`).toBe(0);
      }
    } finally {
      process.umask(previous);
    }
  });

  it('tightens an existing directory and database file that are readable by others', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const file = dbFile(dir);
    writeFileSync(file, '', { mode: 0o644 });
    chmodSync(file, 0o644);
    const store = open(file);
    expect(modeOf(dir)).toBe(0o700);
    expect(modeOf(file)).toBe(0o600);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('uses WAL and sets synchronous from durability on its own connection: full → FULL (2), normal → NORMAL (1)', async () => {
    const dir = tempDir();
    const full = open(path.join(dir, 'full.db'), 'full');
    const normal = open(path.join(dir, 'normal.db'), 'normal');
    const byDefault = open(path.join(dir, 'default.db'));
    expect(full.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(normal.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(full.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(normal.db.pragma('synchronous', { simple: true })).toBe(1);
    expect(byDefault.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(full.db.pragma('busy_timeout', { simple: true })).toBeGreaterThan(0);
    expect(full.db.pragma('foreign_keys', { simple: true })).toBe(1);
  });

  it('sets synchronous on every connection: a second store on a WAL file gets its own durability', async () => {
    const file = dbFile(tempDir());
    const first = open(file, 'normal');
    const second = open(file, 'full');
    expect(second.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(first.db.pragma('synchronous', { simple: true })).toBe(1);
  });

  it('openStore passes the configured durability and puts cairn.db in the data directory', async () => {
    const dataDir = path.join(tempDir(), 'state');
    const store = await openStore(defaultConfig({ dataDir, durability: 'normal' }));
    opened.push(store);
    expect(store.location).toBe(path.join(dataDir, 'cairn.db'));
    const connection = store.connection();
    expect(connection.kind).toBe('sqlite');
    if (connection.kind === 'sqlite') expect(connection.db.pragma('synchronous', { simple: true })).toBe(1);
    expect(modeOf(dataDir)).toBe(0o700);
  });
});

/**
 * The compiled module a child process imports. `npm test` builds dist/ before vitest starts; a dist/
 * older than src/ would test old code, so say so instead of rebuilding under other suites' feet.
 */
function distModule(relative: string): string {
  const built = path.join(ROOT, 'dist', relative.replace(/\.ts$/, '.js'));
  const sources = [
    ...readdirSync(path.join(ROOT, 'src', 'store')).filter((f) => f.endsWith('.ts')).map((f) => path.join(ROOT, 'src', 'store', f)),
    ...readdirSync(path.join(ROOT, 'src', 'engine')).map((f) => path.join(ROOT, 'src', 'engine', f)),
    path.join(ROOT, 'src', 'errors.ts'),
    path.join(ROOT, 'src', 'config.ts'),
    path.join(ROOT, 'machines', 'task.machine.ts'),
  ];
  const newestSource = Math.max(...sources.map((f) => statSync(f).mtimeMs));
  if (!existsSync(built) || statSync(built).mtimeMs < newestSource) {
    throw new Error(`${built} is missing or older than src/; run \`npm run build\` (npm test does) and run the tests again`);
  }
  return pathToFileURL(built).href;
}

/**
 * Module code for a child process: wait until all `count` children reached this point (marker files next
 * to `file`), so they start together however long each took to boot.
 */
function barrier(count: number): string {
  return `
    const { existsSync, writeFileSync } = await import('node:fs');
    writeFileSync(file + '.ready-' + n, '');
    for (let i = 0; i < ${count}; i++) while (!existsSync(file + '.ready-' + i)) {}
  `;
}

/** Runs `script` (an ES module body) in a fresh node process with `args`; resolves with its exit code and output. */
function runNode(script: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, ...args]);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

/** The migrations this build knows, as files on disk; the tests hold for any number of them. */
const KNOWN_MIGRATIONS = loadMigrations('sqlite');
const FUTURE = 9999;

describe('migrations', () => {
  it('records every migration once and applies nothing again on reopen', async () => {
    const file = dbFile(tempDir());
    const first = open(file);
    const rows = first.db.prepare('SELECT version, name, applied_at FROM schema_migrations').all() as {
      version: number;
      name: string;
      applied_at: number;
    }[];
    expect(rows).toEqual(KNOWN_MIGRATIONS.map((m) => ({ version: m.version, name: m.name, applied_at: expect.any(Number) })));
    expect(rows[0]).toMatchObject({ version: 1, name: 'initial' });
    await engineFor(first).submit({ request: 'kept across reopen' }, 'test');
    await first.close();

    const second = open(file);
    expect(second.db.prepare('SELECT version, name, applied_at FROM schema_migrations').all()).toEqual(rows);
    expect((await second.listTasks()).map((t) => t.request)).toEqual(['kept across reopen']);
  });

  it('lets two stores open the same new file one after the other before any write, and both work', async () => {
    const file = dbFile(tempDir());
    const a = open(file);
    const b = open(file);
    expect(b.db.prepare('SELECT count(*) FROM schema_migrations').pluck().get()).toBe(KNOWN_MIGRATIONS.length);
    const fromA = await engineFor(a).submit({ request: 'from a' }, 'test');
    const fromB = await engineFor(b).submit({ request: 'from b' }, 'test');
    expect((await b.getTask(fromA.id))?.request).toBe('from a');
    expect((await a.getTask(fromB.id))?.request).toBe('from b');
  });

  it('lets several processes open the same new file at the same instant: all succeed, the schema is applied once', async () => {
    const file = dbFile(tempDir());
    const script = `
      const { openSqliteStore } = await import(${JSON.stringify(distModule('src/store/sqlite.ts'))});
      const [file, n] = process.argv.slice(1);
      ${barrier(4)}
      const store = openSqliteStore(file);
      await store.createSession({ id: 'child-' + n, pid: process.pid, host: 'test', at: Date.now() });
      await store.close();
      console.log('opened ' + n);
    `;
    const children = [0, 1, 2, 3].map((n) => runNode(script, [file, String(n)]));
    const results = await Promise.all(children);
    results.forEach((r, n) => {
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out.trim()).toBe(`opened ${n}`);
    });
    const store = open(file);
    expect(store.db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all()).toEqual(KNOWN_MIGRATIONS.map((m) => m.version));
    expect((await store.listSessions()).map((s) => s.id).sort()).toEqual(['child-0', 'child-1', 'child-2', 'child-3']);
  });

  it('refuses a database whose schema is newer than this cairn, naming the file, and leaves it as it was', async () => {
    const file = dbFile(tempDir());
    const store = open(file);
    store.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(FUTURE, 'from_the_future', 1);
    await store.close();

    const error = openError(file);
    expect(error).toBeInstanceOf(StoreError);
    expect(error.message).toContain(file);
    expect(error.message).toMatch(/newer/);
    expect(error.message).toContain(`schema version ${FUTURE}`);

    const check = new Database(file, { readonly: true });
    try {
      expect(check.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all()).toEqual([...KNOWN_MIGRATIONS.map((m) => m.version), FUTURE]);
    } finally {
      check.close();
    }
  });
});

describe('a file that is not SQLite', () => {
  it('is refused with a StoreError naming it, and left byte-for-byte unchanged', async () => {
    const dir = tempDir();
    const file = dbFile(dir);
    const text = `these are my notes, not a database\n${randomBytes(3000).toString('base64')}\n`;
    writeFileSync(file, text);
    chmodSync(file, 0o644);
    const before = readFileSync(file);

    const error = openError(file);
    expect(error).toBeInstanceOf(StoreError);
    expect(error.message).toContain(file);
    expect(error.message).toContain('is not a SQLite database');
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['cairn.db']);
  });

  it('a SQLite database that is not cairn\'s is refused by name and not switched to WAL or migrated', async () => {
    const dir = tempDir();
    const file = dbFile(dir);
    const other = new Database(file);
    other.exec("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);");
    other.close();
    chmodSync(file, 0o644);
    const before = readFileSync(file);

    const error = openError(file);
    expect(error).toBeInstanceOf(StoreError);
    expect(error.message).toContain(`${file} is a SQLite database, but not cairn's`);
    expect(error.message).toContain('invoices');
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o644);
    const check = new Database(file, { readonly: true });
    try {
      expect(check.pragma('journal_mode', { simple: true })).toBe('delete');
      expect(check.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all()).toEqual(['invoices']);
    } finally {
      check.close();
    }
  });

  it('cairn\'s own database left readable by others is made private again on open, with its -wal and -shm', async () => {
    const dir = tempDir();
    const file = dbFile(dir);
    const first = open(file);
    await engineFor(first).submit({ request: 'kept' }, 'test');
    // Held open so the -wal and -shm stay while the modes are loosened and the store is opened again.
    for (const f of [file, `${file}-wal`, `${file}-shm`]) chmodSync(f, 0o644);
    const second = open(file);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(modeOf(f), f).toBe(0o600);
    expect((await second.getTask(1))?.request).toBe('kept');
  });
});

describe('transitions', () => {
  it('appends after the last transition even when the version does not match the history (a hand-edited file)', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const created = await engine.submit({ request: 'x' }, 'test');
    // A row the version does not count: the next seq is taken from the history, not the version.
    store.db
      .prepare(`INSERT INTO transitions (task_id, seq, from_state, to_state, event_type, event, actor, at)
                VALUES (?, 2, 'pending', 'pending', 'NOTE', '{"type":"NOTE"}', 'sql', 0)`)
      .run(created.id);
    const { task } = await engine.start(created.id, 'test');
    expect(task).toMatchObject({ state: 'planning', version: 2 });
    expect((await store.getHistory(created.id)).map((h) => [h.seq, h.event.type])).toEqual([
      [1, 'SUBMIT'],
      [2, 'NOTE'],
      [3, 'START'],
    ]);
  });
});

describe('optimistic concurrency across two connections', () => {
  it('two processes writing the same tasks at once: no busy errors, no lost update, one START and one claim per run', async () => {
    const file = dbFile(tempDir());
    const store = open(file);
    const engine = engineFor(store);
    // One hot task both processes resume over and over, then a row of tasks both try to start, claim and cancel.
    const hot = (await runningTask(engine)).id;
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) ids.push((await engine.submit({ request: `shared ${i}` }, 'test')).id);
    const ROUNDS = 40;
    const script = `
      const { openSqliteStore } = await import(${JSON.stringify(distModule('src/store/sqlite.ts'))});
      const { Engine } = await import(${JSON.stringify(distModule('src/engine/engine.ts'))});
      const { defaultConfig } = await import(${JSON.stringify(distModule('src/config.ts'))});
      const [file, n, hot, idsJson, rounds] = process.argv.slice(1);
      const store = openSqliteStore(file);
      const engine = new Engine(store, defaultConfig({}), Date.now);
      const me = 'proc-' + n;
      const report = { resumed: 0, conflicts: 0, hotClaims: [], started: [], claimed: [], cancelled: [], errors: [] };
      const commit = store.commitTransitions.bind(store);
      store.commitTransitions = async (writes) => {
        const results = await commit(writes);
        report.conflicts += results.filter((r) => !r.ok && r.reason === 'conflict').length;
        return results;
      };
      const note = (e) => { if (e.code !== 'INVALID_TRANSITION') report.errors.push(String(e.code) + ': ' + e.message); };
      ${barrier(2)}
      for (let i = 0; i < Number(rounds); i++) {
        await store.claimRun(Number(hot), me, Date.now(), 60000).then((c) => c && report.hotClaims.push(c.run.attempt), note);
        await engine.apply(Number(hot), () => ({ type: 'RESUME', at: Date.now() }), me).then(() => report.resumed++, note);
        // Let go of the write lock now and then, so the two processes interleave instead of taking turns.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
      }
      for (const id of JSON.parse(idsJson)) {
        await engine.start(id, me).then(() => report.started.push(id), note);
        await store.claimRun(id, me, Date.now(), 60000).then((c) => c && report.claimed.push(id), note);
        if (id % 2 === Number(n)) await engine.cancel(id, me).then(() => report.cancelled.push(id), note);
      }
      await store.close();
      console.log(JSON.stringify(report));
    `;
    const args = (n: number) => [file, String(n), String(hot), JSON.stringify(ids), String(ROUNDS)];
    const results = await Promise.all([0, 1].map((n) => runNode(script, args(n))));
    type Report = { resumed: number; conflicts: number; hotClaims: number[]; started: number[]; claimed: number[]; cancelled: number[]; errors: string[] };
    const reports = results.map((r) => {
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      return JSON.parse(r.out) as Report;
    });
    expect(reports.flatMap((r) => r.errors)).toEqual([]);

    // Every RESUME landed exactly once, in one unbroken chain, each on top of the one before.
    expect(reports.map((r) => r.resumed)).toEqual([ROUNDS, ROUNDS]);
    const hotTask = await mustGet(store, hot);
    const hotHistory = await store.getHistory(hot);
    expect(hotHistory).toHaveLength(2 + 2 * ROUNDS);
    // The premise of the test: the two processes' writes really interleaved.
    const switches = hotHistory.slice(2).filter((h, i, all) => i > 0 && h.actor !== all[i - 1].actor).length;
    expect(switches, `conflicts retried: ${reports.map((r) => r.conflicts).join(' + ')}`).toBeGreaterThan(0);
    expectUnbrokenHistory(hotHistory, hotTask.version);
    expect(hotTask.runAttempt).toBe(1 + 2 * ROUNDS);
    expect(replayHistory(hotHistory)).toEqual(hotTask.snapshot);
    // No attempt was claimed twice, and each claimed run was closed by the resume after it.
    const hotClaims = reports.flatMap((r) => r.hotClaims).sort((x, y) => x - y);
    expect(new Set(hotClaims).size).toBe(hotClaims.length);
    const runs = await store.getStageRuns(hot);
    expect(runs.map((r) => r.attempt).sort((x, y) => x - y)).toEqual(hotClaims);
    expect(runs.filter((r) => r.outcome === null)).toEqual([]);

    const sorted = (xs: number[]) => [...xs].sort((x, y) => x - y);
    expect(sorted(reports.flatMap((r) => r.started))).toEqual(ids);
    expect(sorted(reports.flatMap((r) => r.claimed))).toEqual(ids);
    expect(sorted(reports.flatMap((r) => r.cancelled))).toEqual(ids);
    for (const id of ids) {
      const task = await mustGet(store, id);
      const history = await store.getHistory(id);
      expect(history.map((h) => h.event.type)).toEqual(['SUBMIT', 'START', 'CANCEL']);
      expectUnbrokenHistory(history, task.version);
      expect(task).toMatchObject({ state: 'cancelled', lease: null });
      expect((await store.getStageRuns(id)).map((r) => [r.attempt, r.outcome])).toEqual([[1, 'superseded']]);
    }
  });
});

describe('leases and fencing', () => {
  it('two connections claiming the same run at once: exactly one gets it', async () => {
    const file = dbFile(tempDir());
    const a = open(file);
    const b = open(file);
    const engine = engineFor(a);
    const tasks = [];
    for (let i = 0; i < 5; i++) tasks.push(await runningTask(engine));
    const claims = await Promise.all(tasks.flatMap((t) => [a.claimRun(t.id, 'sess-a', now, LEASE_MS), b.claimRun(t.id, 'sess-b', now, LEASE_MS)]));
    for (const [i, t] of tasks.entries()) {
      const pair = claims.slice(2 * i, 2 * i + 2);
      expect(pair.filter((c) => c !== null)).toHaveLength(1);
      expect(await a.getStageRuns(t.id)).toHaveLength(1);
    }
  });
});

describe('dispatch and resume queries', () => {
  it('dispatch reads waiting runs and pending tasks in index order: no statement a dispatch round or a claiming write runs sorts the backlog', async () => {
    const prepared: string[] = [];
    const prepare = Database.prototype.prepare;
    Database.prototype.prepare = function (this: Database.Database, sql: string) {
      prepared.push(sql);
      return prepare.call(this, sql);
    } as typeof prepare;
    const file = dbFile(tempDir());
    try {
      const store = open(file);
      const engine = engineFor(store, { approvals: { plan: 'auto', implementation: 'auto' } });
      // A backlog of every priority: pending tasks, and started ones whose plan runs wait for a slot.
      const ids: number[] = [];
      for (const priority of ['low', 'medium', 'high'] as const) {
        for (let i = 0; i < 3; i++) ids.push((await engine.submit({ request: `${priority} ${i}`, priority }, 'test')).id);
      }
      for (const id of ids.slice(0, 6)) await engine.start(id, 'test');
      expect((await store.findDispatchable(2)).map((t) => t.priority)).toEqual(['high', 'high']);
      expect((await store.findRunnable(now, 2)).map((t) => t.priority)).toEqual(['medium', 'medium']);
      // A medium result yields its next run to nothing better: it claims it, after asking for the best waiting priority.
      const claim = (await store.claimRun(ids[3], 'sess', now, LEASE_MS))!;
      const event = { type: 'STAGE_SUCCEEDED' as const, stage: 'plan' as const, attempt: 1, output: 'p', at: now };
      expect((await engine.recordStageResult(ids[3], event, 'test', claim.lease.token, { sessionId: 'sess', leaseMs: LEASE_MS })).claimed).toBeDefined();
    } finally {
      Database.prototype.prepare = prepare;
    }
    const backlogReads = prepared.filter((sql) => /lease_owner IS NULL|state = 'pending'/.test(sql) && /ORDER BY/.test(sql));
    expect(backlogReads).toHaveLength(3); // waiting runs, the best waiting priority, pending tasks
    const db = new Database(file, { readonly: true });
    try {
      for (const sql of backlogReads) {
        const params = Array<null>(sql.split('?').length - 1).fill(null);
        const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail);
        expect(plan.filter((step) => step.includes('TEMP B-TREE FOR ORDER BY')), `${sql}\n${plan.join('\n')}`).toEqual([]);
      }
    } finally {
      db.close();
    }
  });

  it('findResumable returns tasks of gone sessions and expired leases, not those of a live session', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const sessions = ['live', 'crashed', 'stopped', 'stale', 'expired'];
    for (const id of sessions) await store.createSession({ id, pid: 1, host: 'test', at: now });
    const task: Record<string, number> = {};
    for (const owner of [...sessions, 'unknown']) {
      const t = await runningTask(engine);
      task[owner] = t.id;
      // The expired session's lease is short; the others run for a minute.
      expect(await store.claimRun(t.id, owner, now, owner === 'expired' ? 1000 : LEASE_MS)).not.toBeNull();
    }
    const unleased = await runningTask(engine);
    await store.endSession('crashed', 'crashed', now);
    await store.endSession('stopped', 'stopped', now);
    await store.endSession('stale', 'stale', now);

    const resumableAt = async (t: number) => (await store.findResumable(t)).map((r) => r.id);
    expect(await resumableAt(now)).toEqual([task.crashed, task.stopped, task.stale, task.unknown]);
    now += 5000;
    expect(await resumableAt(now)).toEqual([task.crashed, task.stopped, task.stale, task.expired, task.unknown]);
    expect(await resumableAt(now)).not.toContain(unleased.id);

    // A heartbeat renews the leases its session holds, and only those.
    const liveLease = (await mustGet(store, task.live)).lease;
    await store.heartbeatSession('expired', now, LEASE_MS);
    expect((await mustGet(store, task.expired)).lease?.expiresAt).toBe(now + LEASE_MS);
    expect((await mustGet(store, task.live)).lease).toEqual(liveLease);
    expect((await store.listSessions({ status: 'active' })).find((s) => s.id === 'expired')?.lastHeartbeatAt).toBe(now);
    expect(await resumableAt(now)).toEqual([task.crashed, task.stopped, task.stale, task.unknown]);

    // A heartbeat does not bring a crashed session back to life.
    await store.heartbeatSession('crashed', now, LEASE_MS);
    expect((await store.listSessions({ status: 'crashed' })).map((s) => s.id)).toEqual(['crashed']);
    expect(await resumableAt(now)).toContain(task.crashed);

    // Resume puts the stage back with attempt + 1; the interrupted run is closed and fenced out.
    const oldToken = (await mustGet(store, task.crashed)).lease!.token;
    const { task: resumed } = await engine.resume(task.crashed, 'daemon:test', async () => false);
    expect(resumed).toMatchObject({ state: 'planning', runStage: 'plan', runAttempt: 2, lease: null });
    expect(await resumableAt(now)).not.toContain(task.crashed);
    const reclaim = await store.claimRun(task.crashed, 'live', now, LEASE_MS);
    expect(reclaim?.lease.token).toBe(oldToken + 1);
    expect((await store.getStageRuns(task.crashed)).map((r) => [r.attempt, r.outcome])).toEqual([
      [1, 'interrupted'],
      [2, null],
    ]);
    const stale = engine.recordStageResult(task.crashed, { type: 'STAGE_SUCCEEDED', stage: 'plan', attempt: 1, output: 'old', at: now }, 'test', oldToken);
    await expect(stale).rejects.toBeInstanceOf(StageResultRefused);
  });
});

describe('engine refusals', () => {
  it('approving a pending task names its state and the gate states', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const task = await engine.submit({ request: 'x' }, 'test');
    const error = await engine.approve(task.id, 'ann').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidTransitionError);
    expect((error as Error).message).toBe(
      `task ${task.id} is pending; approve needs a task at plan_awaiting_approval or implementation_awaiting_approval`,
    );
    expect(await store.getTask(task.id)).toEqual(task);
  });

  it('an unknown id is TaskNotFoundError', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    for (const call of [() => engine.approve(77, 'ann'), () => engine.cancel(77, 'ann'), () => engine.getTask(77), () => engine.rewind(77, 'workflow_start', 'ann')]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TaskNotFoundError);
      expect((error as Error).message).toContain('task 77 does not exist');
    }
  });
});

describe('resume', () => {
  it('is refused while a live session holds the lease', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const task = await runningTask(engine);
    await store.claimRun(task.id, 'sess-live', now, LEASE_MS);
    const before = await mustGet(store, task.id);
    const error = await engine.resume(task.id, 'user:ann', async () => true).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidTransitionError);
    expect((error as Error).message).toContain(`task ${task.id} is planning and its stage is running in session sess-live`);
    expect(await mustGet(store, task.id)).toEqual(before);
  });
});

describe('a full run', () => {
  it('drives a task to completed with auto approvals and one stage run per stage', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store, { approvals: { plan: 'auto', implementation: 'auto' } });
    const task = await engine.submit({ request: 'all the way' }, 'test');
    const done = await complete(engine, store, task.id);
    expect((await store.getStageRuns(task.id)).map((r) => [r.stage, r.attempt, r.outcome])).toEqual([
      ['plan', 1, 'succeeded'],
      ['implement', 1, 'succeeded'],
      ['review', 1, 'succeeded'],
      ['verify', 1, 'succeeded'],
    ]);
    expect((await store.getCheckpoints(task.id)).map((c) => c.name)).toEqual([
      'workflow_start',
      'after_planning',
      'start_implementation',
      'after_implementation',
      'after_review',
      'after_verification',
    ]);
    expect(await store.countByStatus()).toEqual({ completed: 1 });
    expectUnbrokenHistory(await store.getHistory(task.id), done.version);
    // The change marker moves when another connection commits.
    const watcher = open(store.location);
    const marker = await watcher.changeMarker();
    await engine.submit({ request: 'another' }, 'test');
    await waitFor(async () => (await watcher.changeMarker()) !== marker, { what: 'data_version to change', timeoutMs: 2000 });
  });
});

