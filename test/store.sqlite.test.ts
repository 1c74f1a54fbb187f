/**
 * The SQLite store against real files: permissions, pragmas, migrations, atomic transitions, optimistic
 * concurrency across connections, leases and fencing, dispatch and resume queries, and the engine's
 * refusals. No mocks: every test opens its own database under a fresh temp directory.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TaskEvent, TaskState } from '../machines/task.machine.js';
import { statusOfState } from '../machines/task.machine.js';
import { defaultConfig, type ConfigFile } from '../src/config.js';
import { Engine, StageResultRefused } from '../src/engine/engine.js';
import { replayHistory } from '../src/engine/replay.js';
import { checkpointsNamed, restoreSnapshot, runRequested, step, toPersisted } from '../src/engine/snapshot.js';
import { CheckpointNotFoundError, InvalidTransitionError, StoreError, TaskNotFoundError, UsageError } from '../src/errors.js';
import { loadMigrations } from '../src/store/migrate.js';
import { openStore } from '../src/store/openStore.js';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.js';
import type { TaskRecord, TransitionWrite } from '../src/store/store.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LEASE_MS = 60_000;
const T0 = 1_700_000_000_000;

let now = T0;
const clock = () => now;
const opened: SqliteStore[] = [];

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

/** The write the engine would build for `event`, so store-level checks can be driven directly. */
function writeFor(
  task: TaskRecord,
  event: TaskEvent,
  options: { expectedVersion?: number; leaseToken?: number; actor?: string } = {},
): TransitionWrite {
  const result = step(restoreSnapshot(task.snapshot), event);
  if (!result) throw new Error(`the machine refuses ${event.type} in ${task.state}`);
  const to = result.next.value as TaskState;
  const isStageResult = event.type === 'STAGE_SUCCEEDED' || event.type === 'STAGE_FAILED';
  return {
    taskId: task.id,
    expectedVersion: options.expectedVersion ?? task.version,
    from: task.state,
    to,
    status: statusOfState(to),
    event: event as unknown as TransitionWrite['event'],
    actor: options.actor ?? 'test',
    at: event.at,
    snapshot: toPersisted(result.next),
    checkpoints: checkpointsNamed(result.actions),
    nextRun: runRequested(result.actions),
    completion: isStageResult
      ? {
          stage: event.stage,
          attempt: event.attempt,
          outcome: event.type === 'STAGE_SUCCEEDED' ? 'succeeded' : 'failed',
          exitCode: event.type === 'STAGE_FAILED' ? (event.exitCode ?? null) : 0,
          signal: null,
          leaseToken: options.leaseToken ?? -1,
        }
      : undefined,
  };
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
    const store = (await openStore(defaultConfig({ dataDir, durability: 'normal' }))) as SqliteStore;
    opened.push(store);
    expect(store.location).toBe(path.join(dataDir, 'cairn.db'));
    expect(store.db.pragma('synchronous', { simple: true })).toBe(1);
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
  it('commits transition, task and checkpoint rows together; history runs seq 1.. in order and replays to the snapshot', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const task = await engine.submit({ request: 'do the thing', tags: ['a'] }, 'cli');
    expect(task).toMatchObject({ state: 'pending', status: 'pending', version: 1 });
    now += 10;
    await engine.start(task.id, 'daemon:test');
    await succeedNextStage(engine, store, task.id, { plan: 'steps' });
    now += 10;
    const { task: approved } = await engine.approve(task.id, 'ann', 'looks fine');

    expect(approved).toMatchObject({ state: 'implementing', status: 'in_progress', version: 4, runStage: 'implement', runAttempt: 1 });
    const history = await store.getHistory(task.id);
    expect(history.map((h) => [h.seq, h.from, h.to, h.event.type, h.actor])).toEqual([
      [1, null, 'pending', 'SUBMIT', 'cli'],
      [2, 'pending', 'planning', 'START', 'daemon:test'],
      [3, 'planning', 'plan_awaiting_approval', 'STAGE_SUCCEEDED', 'daemon:test'],
      [4, 'plan_awaiting_approval', 'implementing', 'APPROVE', 'user:ann'],
    ]);
    expect(history[3].event).toMatchObject({ by: 'ann', comment: 'looks fine', at: now });
    expectUnbrokenHistory(history, approved.version);

    const checkpoints = await store.getCheckpoints(task.id);
    expect(checkpoints.map((c) => [c.name, c.seq, c.state])).toEqual([
      ['workflow_start', 1, 'pending'],
      ['after_planning', 3, 'plan_awaiting_approval'],
      ['start_implementation', 4, 'implementing'],
    ]);
    expect(checkpoints[2].snapshot).toEqual(approved.snapshot);
    expect(replayHistory(history)).toEqual(approved.snapshot);
    expect(await store.getTask(task.id)).toEqual(approved);
  });

  it('is all or nothing: when a checkpoint row cannot be written, neither the transition nor the task row changes', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const a = await engine.submit({ request: 'a' }, 'test');
    await engine.start(a.id, 'test');
    await succeedNextStage(engine, store, a.id, 'plan');
    const b = await engine.submit({ request: 'b' }, 'test');
    const atGate = await mustGet(store, a.id);
    const checkpointsBefore = await store.getCheckpoints(a.id);

    store.db.exec(`CREATE TEMP TRIGGER refuse_checkpoints BEFORE INSERT ON main.checkpoints
                   BEGIN SELECT RAISE(ABORT, 'checkpoint refused by test'); END`);
    now += 5;
    const approve = writeFor(atGate, { type: 'APPROVE', by: 'ann', at: now });
    expect(approve.checkpoints).toEqual(['start_implementation']);
    const startB = writeFor(b, { type: 'START', at: now });
    // B's write comes first in the batch and would succeed on its own: it must be rolled back too.
    await expect(store.commitTransitions([startB, approve])).rejects.toThrow(/checkpoint refused by test/);
    store.db.exec('DROP TRIGGER refuse_checkpoints');

    expect(await store.getTask(a.id)).toEqual(atGate);
    expect(await store.getTask(b.id)).toEqual(b);
    expect(await store.getHistory(a.id)).toHaveLength(3);
    expect(await store.getHistory(b.id)).toHaveLength(1);
    expect(await store.getCheckpoints(a.id)).toEqual(checkpointsBefore);

    const [ok] = await store.commitTransitions([approve]);
    expect(ok).toMatchObject({ ok: true, seq: 4, task: { state: 'implementing', version: 4 } });
  });

  it('refuses a write with a stale expectedVersion as a conflict and changes nothing', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const created = await engine.submit({ request: 'x' }, 'test');
    const { task } = await engine.start(created.id, 'test');
    const historyBefore = await store.getHistory(task.id);
    const runsBefore = await store.getStageRuns(task.id);

    const stale = writeFor(task, { type: 'CANCEL', by: 'bob', at: now }, { expectedVersion: task.version - 1 });
    const [result] = await store.commitTransitions([stale]);
    expect(result).toMatchObject({ ok: false, reason: 'conflict' });
    expect(result.ok ? '' : result.message).toContain(`task ${task.id}`);

    expect(await store.getTask(task.id)).toEqual(task);
    expect(await store.getHistory(task.id)).toEqual(historyBefore);
    expect(await store.getStageRuns(task.id)).toEqual(runsBefore);
    expect(task.version).toBe(2);
  });

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

  it('reports an unknown task as missing', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const task = await engine.submit({ request: 'x' }, 'test');
    const write = { ...writeFor(task, { type: 'START', at: now }), taskId: 999 };
    const [result] = await store.commitTransitions([write]);
    expect(result).toMatchObject({ ok: false, reason: 'missing' });
    expect(await store.getHistory(999)).toEqual([]);
  });

  it('checks each write of a batch on its own: a conflicting one does not stop the others', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const [a, b, c] = [await engine.submit({ request: 'a' }, 't'), await engine.submit({ request: 'b' }, 't'), await engine.submit({ request: 'c' }, 't')];
    now += 1;
    const results = await store.commitTransitions([
      writeFor(a, { type: 'START', at: now }),
      writeFor(b, { type: 'START', at: now }, { expectedVersion: 5 }),
      writeFor(c, { type: 'START', at: now }),
    ]);
    expect(results.map((r) => (r.ok ? `ok:${r.seq}` : r.reason))).toEqual(['ok:2', 'conflict', 'ok:2']);
    expect((await mustGet(store, a.id)).state).toBe('planning');
    expect(await mustGet(store, b.id)).toEqual(b);
    expect((await mustGet(store, c.id)).state).toBe('planning');
    expect(await store.getHistory(b.id)).toHaveLength(1);
    expect((await store.findRunnable(now, 10)).map((t) => t.id)).toEqual([a.id, c.id]);
  });

  it('rejects a dependency on a task that does not exist, at the store as well as in the engine', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const base = await engine.submit({ request: 'base' }, 'test');
    const newTask = {
      request: 'child',
      priority: 'medium' as const,
      tags: [],
      dependsOn: [base.id, 4242],
      actor: 'test',
      at: now,
      snapshot: base.snapshot,
      checkpoints: [],
      submitEvent: { type: 'SUBMIT' as const },
    };
    await expect(store.createTask(newTask)).rejects.toThrow(/task 4242 does not exist/);
    await expect(engine.submit({ request: 'child', dependsOn: [4242] }, 'test')).rejects.toBeInstanceOf(TaskNotFoundError);
    expect((await store.listTasks()).map((t) => t.id)).toEqual([base.id]);
  });
});

describe('reading tasks', () => {
  it('listTasks filters by status, state, tag and ids, in id order, with a limit; countByStatus counts', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const a = await engine.submit({ request: 'a', tags: ['red', 'blue'] }, 'test');
    const b = await engine.submit({ request: 'b', tags: ['blue'] }, 'test');
    const c = await engine.submit({ request: 'c', tags: ['red'], dependsOn: [a.id, b.id] }, 'test');
    await engine.start(b.id, 'test');
    await engine.cancel(c.id, 'test');
    const ids = (tasks: TaskRecord[]) => tasks.map((t) => t.id);
    expect(ids(await store.listTasks())).toEqual([a.id, b.id, c.id]);
    expect(ids(await store.listTasks({ status: 'in_progress' }))).toEqual([b.id]);
    expect(ids(await store.listTasks({ state: 'cancelled' }))).toEqual([c.id]);
    expect(ids(await store.listTasks({ tag: 'red' }))).toEqual([a.id, c.id]);
    expect(ids(await store.listTasks({ tag: 'blue', status: 'pending' }))).toEqual([a.id]);
    expect(ids(await store.listTasks({ ids: [c.id, a.id] }))).toEqual([a.id, c.id]);
    expect(ids(await store.listTasks({ ids: [] }))).toEqual([]);
    expect(ids(await store.listTasks({ limit: 2 }))).toEqual([a.id, b.id]);
    expect((await store.getTask(c.id))?.dependsOn).toEqual([a.id, b.id]);
    expect(await store.countByStatus()).toEqual({ pending: 1, in_progress: 1, cancelled: 1 });
    expect(await store.getTask(999)).toBeNull();
  });
});

describe('optimistic concurrency across two connections', () => {
  it('lets exactly one of two writers built from the same version win', async () => {
    const file = dbFile(tempDir());
    const a = open(file);
    const b = open(file);
    const engineA = engineFor(a);
    const created = await engineA.submit({ request: 'contested' }, 'test');
    await engineA.start(created.id, 'test');
    await succeedNextStage(engineA, a, created.id, 'plan');

    const seenByA = await mustGet(a, created.id);
    const seenByB = await mustGet(b, created.id);
    expect(seenByB).toEqual(seenByA);
    const [approved] = await a.commitTransitions([writeFor(seenByA, { type: 'APPROVE', by: 'ann', at: now })]);
    const [cancelled] = await b.commitTransitions([writeFor(seenByB, { type: 'CANCEL', by: 'bob', at: now })]);
    expect(approved).toMatchObject({ ok: true, seq: 4 });
    expect(cancelled).toMatchObject({ ok: false, reason: 'conflict' });

    const after = await mustGet(b, created.id);
    expect(after).toMatchObject({ state: 'implementing', version: seenByA.version + 1 });
    expectUnbrokenHistory(await b.getHistory(created.id), after.version);
  });

  it('two engines racing approve against cancel on the same tasks never lose an update or repeat a seq', async () => {
    const file = dbFile(tempDir());
    const a = open(file);
    const b = open(file);
    const engineA = engineFor(a);
    const engineB = engineFor(b);
    const ids: number[] = [];
    for (let i = 0; i < 8; i++) {
      const t = await engineA.submit({ request: `race ${i}` }, 'test');
      await engineA.start(t.id, 'test');
      await succeedNextStage(engineA, a, t.id, 'plan');
      ids.push(t.id);
    }

    // Both orders of the race. Each engine group-commits what it is asked in one turn, and engine A
    // starts from the records it last committed (the tasks at the gate), without reading. Asked in the
    // same turn, A's approvals commit first and B's cancels, computed from the same versions, conflict
    // and are recomputed from implementing. When B's cancels have committed first, A's approvals are
    // computed from a stale record, conflict, and are refused on the fresh one.
    const race = (round: number[], approveFirst: boolean) =>
      Promise.all(
        round.map(async (id) => {
          const approve = () => engineA.approve(id, 'ann');
          const cancel = () => engineB.cancel(id, 'bob', 'changed my mind');
          if (approveFirst) return Promise.allSettled([approve(), cancel()]);
          const cancelled = cancel();
          await new Promise((r) => setTimeout(r, 20));
          const [cancelResult, approveResult] = await Promise.allSettled([cancelled, approve()]);
          return [approveResult, cancelResult];
        }),
      );
    const outcomes = [
      ...(await race(ids.slice(0, 4), true)),
      ...(await race(ids.slice(4), false)),
    ];

    for (const [i, id] of ids.entries()) {
      const [approveResult, cancelResult] = outcomes[i];
      const task = await mustGet(a, id);
      const history = await b.getHistory(id);
      expectUnbrokenHistory(history, task.version);
      const events = history.slice(3).map((h) => h.event.type);
      // The cancel always lands (from the gate or, after a conflict and retry, from implementing).
      expect(cancelResult.status).toBe('fulfilled');
      expect(task.state).toBe('cancelled');
      if (approveResult.status === 'fulfilled') {
        expect(events).toEqual(['APPROVE', 'CANCEL']);
        expect(history.at(-1)?.from).toBe('implementing');
      } else {
        expect(approveResult.reason).toBeInstanceOf(InvalidTransitionError);
        expect(events).toEqual(['CANCEL']);
      }
      expect(replayHistory(history)).toEqual(task.snapshot);
    }
    // Both orders really happened: one approve won its race and at least one lost it.
    const approvesThatLanded = outcomes.filter(([approveResult]) => approveResult.status === 'fulfilled').length;
    expect(approvesThatLanded).toBeGreaterThan(0);
    expect(approvesThatLanded).toBeLessThan(ids.length);
  });
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
  it('claimRun takes the lease, records the run and bumps the token; a second claim gets nothing', async () => {
    const file = dbFile(tempDir());
    const store = open(file);
    const other = open(file);
    const engine = engineFor(store);
    const task = await runningTask(engine);
    expect(task).toMatchObject({ state: 'planning', runStage: 'plan', runAttempt: 1, lease: null });
    const tokenBefore = store.db.prepare('SELECT lease_token FROM tasks WHERE id = ?').pluck().get(task.id) as number;
    expect((await store.findRunnable(now, 10)).map((t) => t.id)).toEqual([task.id]);

    const claim = await store.claimRun(task.id, 'sess-a', now, LEASE_MS);
    expect(claim).not.toBeNull();
    expect(claim!.lease).toEqual({ owner: 'sess-a', expiresAt: now + LEASE_MS, token: tokenBefore + 1 });
    expect(claim!.run).toEqual({
      taskId: task.id,
      stage: 'plan',
      attempt: 1,
      runId: `${task.id}.plan.1`,
      sessionId: 'sess-a',
      startedAt: now,
      finishedAt: null,
      outcome: null,
      exitCode: null,
      signal: null,
      pgid: null,
    });
    expect(await store.getStageRuns(task.id)).toEqual([claim!.run]);
    expect(claim!.task.version).toBe(task.version);

    expect(await other.claimRun(task.id, 'sess-b', now, LEASE_MS)).toBeNull();
    expect(await store.claimRun(task.id, 'sess-a', now, LEASE_MS)).toBeNull();
    expect((await mustGet(other, task.id)).lease?.owner).toBe('sess-a');
    expect(await store.findRunnable(now, 10)).toEqual([]);

    await store.recordRunProcess(task.id, 'plan', 1, 4321);
    expect((await store.getStageRuns(task.id))[0].pgid).toBe(4321);
  });

  it('does not start a run twice: with its lease lost but the run recorded, a claim gets nothing and changes nothing', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const task = await runningTask(engine);
    const claim = (await store.claimRun(task.id, 'sess-a', now, LEASE_MS))!;
    // A lease cleared by hand (or by a bug) must not let the same attempt start again.
    store.db.prepare('UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ?').run(task.id);
    const before = await mustGet(store, task.id);
    expect(await store.claimRun(task.id, 'sess-b', now + 1, LEASE_MS)).toBeNull();
    expect(await mustGet(store, task.id)).toEqual(before);
    expect(await store.getStageRuns(task.id)).toEqual([claim.run]);
  });

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

  it('does not claim a retry before its backoff has passed', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store, { limits: { retryBackoff: '5s' } });
    const task = await runningTask(engine);
    const claim = (await store.claimRun(task.id, 'sess-a', now, LEASE_MS))!;
    const failedAt = now;
    const { task: retrying } = await engine.recordStageResult(
      task.id,
      { type: 'STAGE_FAILED', stage: 'plan', attempt: 1, reason: 'exit', message: 'exit 3', exitCode: 3, at: failedAt },
      'test',
      claim.lease.token,
    );
    expect(retrying).toMatchObject({ state: 'planning', runStage: 'plan', runAttempt: 2, runAfter: failedAt + 5000, lease: null });
    expect(await store.claimRun(task.id, 'sess-a', failedAt + 4999, LEASE_MS)).toBeNull();
    expect(await store.findRunnable(failedAt + 4999, 10)).toEqual([]);
    const second = await store.claimRun(task.id, 'sess-a', failedAt + 5000, LEASE_MS);
    expect(second?.run.attempt).toBe(2);
    expect(second?.lease.token).toBe(claim.lease.token + 1);
    expect((await store.getStageRuns(task.id)).map((r) => [r.attempt, r.outcome, r.exitCode])).toEqual([
      [1, 'failed', 3],
      [2, null, null],
    ]);
  });

  it('refuses a stage result with the wrong lease token as fenced, and changes nothing', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const task = await runningTask(engine);
    const claim = (await store.claimRun(task.id, 'sess-a', now, LEASE_MS))!;
    const before = await mustGet(store, task.id);
    const event = { type: 'STAGE_SUCCEEDED' as const, stage: 'plan' as const, attempt: 1, output: 'plan', at: now };

    const refused = await engine.recordStageResult(task.id, event, 'test', claim.lease.token - 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StageResultRefused);
    expect((refused as StageResultRefused).reason).toBe('fenced');
    expect((refused as Error).message).toMatch(/lease .* was lost/);

    expect(await mustGet(store, task.id)).toEqual(before);
    expect(await store.getHistory(task.id)).toHaveLength(2);
    expect((await store.getStageRuns(task.id))[0].outcome).toBeNull();

    const { task: done } = await engine.recordStageResult(task.id, event, 'test', claim.lease.token);
    expect(done).toMatchObject({ state: 'plan_awaiting_approval', lease: null, runStage: null });
    expect((await store.getStageRuns(task.id))[0]).toMatchObject({ outcome: 'succeeded', finishedAt: now, exitCode: 0 });
  });

  it('records a completion once: a repeat is refused by the engine, the store and the UNIQUE index', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const task = await runningTask(engine);
    const claim = (await store.claimRun(task.id, 'sess-a', now, LEASE_MS))!;
    const event = { type: 'STAGE_SUCCEEDED' as const, stage: 'plan' as const, attempt: 1, output: 'plan', at: now };
    const claimed = await mustGet(store, task.id);
    const write = writeFor(claimed, event, { leaseToken: claim.lease.token });
    const [first] = await store.commitTransitions([write]);
    expect(first.ok).toBe(true);
    const results = () =>
      store.db
        .prepare(`SELECT count(*) FROM transitions WHERE task_id = ? AND stage = 'plan' AND attempt = 1
                  AND event_type IN ('STAGE_SUCCEEDED', 'STAGE_FAILED')`)
        .pluck()
        .get(task.id);
    expect(results()).toBe(1);

    // The engine: the machine has moved on, the old result no longer applies.
    const again = await engine.recordStageResult(task.id, event, 'test', claim.lease.token).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(StageResultRefused);

    // The store, given the same write at the current version: the lease is gone.
    const current = await mustGet(store, task.id);
    const [replayed] = await store.commitTransitions([{ ...write, expectedVersion: current.version }]);
    expect(replayed).toMatchObject({ ok: false, reason: 'fenced' });

    // Even with the lease put back by hand, the run is already finished.
    store.db.prepare('UPDATE tasks SET lease_owner = ?, lease_expires_at = ? WHERE id = ?').run('sess-a', now + LEASE_MS, task.id);
    const [duplicate] = await store.commitTransitions([{ ...write, expectedVersion: current.version }]);
    expect(duplicate).toMatchObject({ ok: false, reason: 'duplicate' });

    // And with the run reopened by hand too, the UNIQUE index stops a second result row; nothing is kept.
    store.db.prepare("UPDATE stage_runs SET outcome = NULL, finished_at = NULL WHERE task_id = ? AND stage = 'plan'").run(task.id);
    await expect(store.commitTransitions([{ ...write, expectedVersion: current.version }])).rejects.toThrow(/already has a recorded result/);
    expect((await store.getStageRuns(task.id))[0].outcome).toBeNull();
    expect((await mustGet(store, task.id)).version).toBe(current.version);
    expect(results()).toBe(1);

    // Direct SQL is held to the same rule.
    const insert = store.db.prepare(`INSERT INTO transitions (task_id, seq, from_state, to_state, event_type, stage, attempt, event, actor, at)
                                     VALUES (?, ?, 'planning', 'planning', ?, 'plan', 1, '{}', 'sql', 0)`);
    expect(() => insert.run(task.id, 100, 'STAGE_FAILED')).toThrow(/UNIQUE/);
    expect(() => insert.run(task.id, 101, 'STAGE_SUCCEEDED')).toThrow(/UNIQUE/);
    expect(results()).toBe(1);
  });

  it('fences a late result after the task was cancelled under the running stage', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const task = await runningTask(engine);
    const claim = (await store.claimRun(task.id, 'sess-a', now, LEASE_MS))!;
    const claimed = await mustGet(store, task.id);
    now += 1;
    const { task: cancelled } = await engine.cancel(task.id, 'bob');
    expect(cancelled.lease).toBeNull();
    expect((await store.getStageRuns(task.id))[0].outcome).toBe('superseded');

    const late = writeFor(claimed, { type: 'STAGE_SUCCEEDED', stage: 'plan', attempt: 1, output: 'late', at: now }, { leaseToken: claim.lease.token });
    const [result] = await store.commitTransitions([{ ...late, expectedVersion: cancelled.version }]);
    expect(result).toMatchObject({ ok: false, reason: 'fenced' });
    expect(await mustGet(store, task.id)).toEqual(cancelled);
  });
});

describe('dispatch and resume queries', () => {
  it('findDispatchable orders by priority high > medium > low, then oldest, and honours the limit', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const submitted: Record<string, number> = {};
    for (const [name, priority] of [
      ['low-old', 'low'],
      ['medium-old', 'medium'],
      ['high-old', 'high'],
      ['high-new', 'high'],
      ['medium-new', 'medium'],
      ['low-new', 'low'],
    ] as const) {
      now += 1000;
      submitted[name] = (await engine.submit({ request: name, priority }, 'test')).id;
    }
    const started = await engine.submit({ request: 'already started', priority: 'high' }, 'test');
    await engine.start(started.id, 'test');

    const order = (await store.findDispatchable(10)).map((t) => t.request);
    expect(order).toEqual(['high-old', 'high-new', 'medium-old', 'medium-new', 'low-old', 'low-new']);
    expect((await store.findDispatchable(2)).map((t) => t.request)).toEqual(['high-old', 'high-new']);
  });

  it('findDispatchable holds back a task until every dependency is completed', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store, { approvals: { plan: 'auto', implementation: 'auto' } });
    const dep = await engine.submit({ request: 'dependency', priority: 'low' }, 'test');
    const otherDep = await engine.submit({ request: 'cancelled dependency', priority: 'low' }, 'test');
    const waiting = await engine.submit({ request: 'waits', priority: 'high', dependsOn: [dep.id] }, 'test');
    const blocked = await engine.submit({ request: 'blocked', priority: 'high', dependsOn: [dep.id, otherDep.id] }, 'test');
    expect(waiting.dependsOn).toEqual([dep.id]);

    const ids = async () => (await store.findDispatchable(10)).map((t) => t.id);
    expect(await ids()).toEqual([dep.id, otherDep.id]);

    await engine.start(dep.id, 'test');
    expect(await ids()).toEqual([otherDep.id]);
    await succeedNextStage(engine, store, dep.id, 'plan');
    await succeedNextStage(engine, store, dep.id, 'impl');
    expect(await ids()).toEqual([otherDep.id]);
    await succeedNextStage(engine, store, dep.id, { verdict: 'approve', comments: 'ok' });
    await succeedNextStage(engine, store, dep.id, 'verified');
    expect((await mustGet(store, dep.id)).state).toBe('completed');

    expect(await ids()).toEqual([waiting.id, otherDep.id]);
    await engine.cancel(otherDep.id, 'bob');
    expect(await ids()).toEqual([waiting.id]);
    expect(await ids()).not.toContain(blocked.id);
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

  it('rewind to a checkpoint the task has not reached lists the ones it has; a reached one works and keeps history', async () => {
    const store = open(dbFile(tempDir()));
    const engine = engineFor(store);
    const task = await engine.submit({ request: 'x' }, 'test');
    await engine.start(task.id, 'test');
    await succeedNextStage(engine, store, task.id, 'plan');

    const error = await engine.rewind(task.id, 'after_review', 'ann').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointNotFoundError);
    expect((error as Error).message).toBe(`task ${task.id} has not reached checkpoint after_review; it has: workflow_start, after_planning`);
    await expect(engine.rewind(task.id, 'nowhere', 'ann')).rejects.toBeInstanceOf(UsageError);
    expect(await store.getHistory(task.id)).toHaveLength(3);

    now += 1;
    const { task: rewound } = await engine.rewind(task.id, 'workflow_start', 'ann');
    expect(rewound).toMatchObject({ state: 'pending', status: 'pending' });
    const history = await store.getHistory(task.id);
    expect(history.map((h) => h.event.type)).toEqual(['SUBMIT', 'START', 'STAGE_SUCCEEDED', 'REWIND']);
    expectUnbrokenHistory(history, rewound.version);
    expect(replayHistory(history)).toEqual(rewound.snapshot);
    // Attempts keep counting after a rewind, so the next run cannot collide with the first one's rows.
    await engine.start(task.id, 'test');
    const claim = await store.claimRun(task.id, 'sess', now, LEASE_MS);
    expect(claim?.run.attempt).toBe(2);
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

  it('re-checks the lease it judged dead: a task another daemon resumed and claimed meanwhile is left alone', async () => {
    const file = dbFile(tempDir());
    const cli = open(file);
    const daemon = open(file);
    const cliEngine = engineFor(cli);
    const daemonEngine = engineFor(daemon);
    const task = await runningTask(cliEngine);
    await cli.createSession({ id: 'dead', pid: 1, host: 'test', at: now });
    await cli.claimRun(task.id, 'dead', now, LEASE_MS);
    await cli.endSession('dead', 'crashed', now);

    const error = await cliEngine
      .resume(task.id, 'user:ann', async (seen) => {
        // While this caller looks at the dead session's lease, another daemon resumes the task and claims the new run.
        await daemonEngine.apply(seen.id, () => ({ type: 'RESUME', at: now }), 'daemon:other');
        expect(await daemon.claimRun(seen.id, 'other', now, LEASE_MS)).not.toBeNull();
        return seen.lease?.owner !== 'dead';
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidTransitionError);
    expect((error as Error).message).toContain(`task ${task.id}`);

    // The other daemon's run is still the live one: not interrupted, not resumed a second time.
    const after = await mustGet(cli, task.id);
    expect(after).toMatchObject({ state: 'planning', runAttempt: 2, lease: { owner: 'other' } });
    expect((await cli.getStageRuns(task.id)).map((r) => [r.attempt, r.sessionId, r.outcome])).toEqual([
      [1, 'dead', 'interrupted'],
      [2, 'other', null],
    ]);
    expect((await cli.getHistory(task.id)).map((h) => h.event.type)).toEqual(['SUBMIT', 'START', 'RESUME']);
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

