/**
 * The store contract, run against every backend (SQLite file, PostgreSQL schema): one transaction per
 * transition, optimistic concurrency across connections and processes, checkpoints and rewind, leases
 * and fencing, dispatch and resume queries, sessions, notes and intake keys, and the change marker.
 * No mocks: each test gets a fresh database (a temp file, or a schema of its own that is dropped after).
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TaskEvent, TaskState } from '../machines/task.machine.js';
import { statusOfState } from '../machines/task.machine.js';
import { defaultConfig, type ConfigFile } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { replayHistory } from '../src/engine/replay.js';
import { checkpointsNamed, restoreTaskSnapshot, runRequested, step, toPersisted } from '../src/engine/snapshot.js';
import { CheckpointNotFoundError, InvalidTransitionError, StageResultRefused, StoreError, TaskNotFoundError, UsageError } from '../src/errors.js';
import { openStore } from '../src/store/openStore.js';
import type { NewNote, Store, TaskRecord, TransitionWrite } from '../src/store/store.js';
import { adminQuery, dropTestSchemas, newTestSchema, schemaUrl } from './helpers/postgres.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LEASE_MS = 60_000;
const T0 = 1_700_000_000_000;

let now = T0;
const clock = () => now;

/** One empty database of a backend, and the ways a test reaches it besides the store. */
interface TestDb {
  /** Opens a store on it: a connection (SQLite) or a pool (PostgreSQL) of its own. */
  open(): Promise<Store>;
  /** Raw SQL as an outside writer would send it (`?` placeholders), for rows broken by hand. */
  exec(sql: string, params?: unknown[]): Promise<any[]>;
  /** Makes every checkpoint insert fail until the returned function is called. */
  refuseCheckpoints(): Promise<() => Promise<void>>;
  /** The `store` config a child process opens it with. */
  storeConfig: ConfigFile['store'];
  dataDir: string;
}

interface Backend {
  name: 'sqlite' | 'postgres';
  create(): Promise<TestDb>;
}

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await dropTestSchemas();
});

beforeEach(() => {
  now = T0;
});

function configFor(db: TestDb, config: ConfigFile = {}) {
  return defaultConfig({ ...config, dataDir: db.dataDir, store: db.storeConfig });
}

async function openTracked(db: TestDb): Promise<Store> {
  const store = await openStore(configFor(db));
  cleanups.push(() => store.close());
  return store;
}

const sqliteBackend: Backend = {
  name: 'sqlite',
  async create() {
    const dataDir = path.join(tempDir(), 'state');
    const file = path.join(dataDir, 'cairn.db');
    let raw: Database.Database | null = null;
    const rawDb = () => {
      if (!raw) {
        raw = new Database(file, { timeout: 15_000 });
        const opened = raw;
        cleanups.push(() => {
          opened.close();
        });
      }
      return raw;
    };
    const db: TestDb = {
      dataDir,
      storeConfig: { kind: 'sqlite' },
      open: () => openTracked(db),
      async exec(sql, params = []) {
        const stmt = rawDb().prepare(sql);
        return stmt.reader ? stmt.all(...params) : (stmt.run(...params), []);
      },
      async refuseCheckpoints() {
        rawDb().exec(`CREATE TRIGGER refuse_checkpoints BEFORE INSERT ON checkpoints
                      BEGIN SELECT RAISE(ABORT, 'checkpoint refused by test'); END`);
        return async () => void rawDb().exec('DROP TRIGGER refuse_checkpoints');
      },
    };
    return db;
  },
};

const postgresBackend: Backend = {
  name: 'postgres',
  async create() {
    const schema = await newTestSchema('contract');
    const db: TestDb = {
      dataDir: path.join(tempDir(), 'state'),
      storeConfig: { kind: 'postgres', url: schemaUrl(schema) },
      open: () => openTracked(db),
      async exec(sql, params = []) {
        let n = 0;
        return adminQuery(sql.replace(/\?/g, () => `$${++n}`), params, schema);
      },
      async refuseCheckpoints() {
        await adminQuery(
          `CREATE FUNCTION refuse_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'checkpoint refused by test'; END $$;
           CREATE TRIGGER refuse_checkpoints BEFORE INSERT ON checkpoints FOR EACH ROW EXECUTE FUNCTION refuse_checkpoint();`,
          [],
          schema,
        );
        return async () => void (await adminQuery('DROP TRIGGER refuse_checkpoints ON checkpoints', [], schema));
      },
    };
    return db;
  },
};

function engineFor(store: Store, db: TestDb, config: ConfigFile = {}): Engine {
  return new Engine(store, configFor(db, config), clock);
}

/** The write the engine would build for `event`, so store-level checks can be driven directly. */
function writeFor(
  task: TaskRecord,
  event: TaskEvent,
  options: { expectedVersion?: number; leaseToken?: number; actor?: string; notes?: NewNote[] } = {},
): TransitionWrite {
  const result = step(restoreTaskSnapshot(task.snapshot), event);
  if (!result) throw new Error(`the machine refuses ${event.type} in ${task.state}`);
  const to = result.next.value as TaskState;
  const isStageResult = event.type === 'STAGE_SUCCEEDED' || event.type === 'STAGE_FAILED';
  return {
    taskId: task.id,
    expectedVersion: options.expectedVersion ?? task.version,
    before: task,
    from: task.state,
    to,
    status: statusOfState(to),
    event: event as unknown as TransitionWrite['event'],
    actor: options.actor ?? 'test',
    at: event.at,
    snapshot: toPersisted(result.next),
    checkpoints: checkpointsNamed(result.actions),
    nextRun: runRequested(result.actions),
    notes: options.notes,
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

async function mustGet(store: Store, id: number): Promise<TaskRecord> {
  const task = await store.getTask(id);
  if (!task) throw new Error(`task ${id} is missing`);
  return task;
}

/** A new task moved to planning, its plan run waiting to be claimed. */
async function runningTask(engine: Engine): Promise<TaskRecord> {
  const created = await engine.submit({ request: 'leased' }, 'test');
  return (await engine.start(created.id, 'test')).task;
}

/** Claims the task's next run for `session` and records its success with the lease token it got. */
async function succeedNextStage(engine: Engine, store: Store, id: number, output: unknown, session = 'sess-test') {
  const claim = await store.claimRun(id, session, now, LEASE_MS);
  if (!claim) throw new Error(`task ${id} has no claimable run`);
  now += 1;
  const event = { type: 'STAGE_SUCCEEDED' as const, stage: claim.run.stage, attempt: claim.run.attempt, output, at: now };
  return engine.recordStageResult(id, event, 'daemon:test', claim.lease.token);
}

/** The stored history must be a gap-free chain: seq 1..n, each transition starting where the last ended. */
function expectUnbrokenHistory(history: { seq: number; from: TaskState | null; to: TaskState }[], version: number) {
  expect(history.map((h) => h.seq)).toEqual(history.map((_, i) => i + 1));
  for (let i = 1; i < history.length; i++) expect(history[i].from).toBe(history[i - 1].to);
  // One version per transition: a lost update would leave the two out of step.
  expect(version).toBe(history.length);
}

/** Runs `script` (an ES module body) in a fresh node process with `args`. */
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

const dist = (relative: string) => JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', relative)).href);

describe.each([sqliteBackend, postgresBackend])('$name store', (backend) => {
  let db: TestDb;
  let store: Store;
  beforeEach(async () => {
    db = await backend.create();
    store = await db.open();
  });

  describe('transitions', () => {
    it('commits transition, task and checkpoint rows together; history runs seq 1.. in order and replays to the snapshot', async () => {
      const engine = engineFor(store, db);
      const task = await engine.submit({ request: 'do the thing', tags: ['a'] }, 'cli');
      expect(task).toMatchObject({ state: 'pending', status: 'pending', version: 1, tags: ['a'], dependsOn: [] });
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

    it('keeps JSON as written: key order, unicode and numbers come back exactly', async () => {
      const engine = engineFor(store, db);
      const task = await runningTask(engine);
      const output = { z: 1, a: [3, 2, 1], nested: { y: 'ünïcødé ✓ "quoted"', b: null, x: 1.5 }, big: 2 ** 52 };
      await succeedNextStage(engine, store, task.id, output);
      const history = await store.getHistory(task.id);
      expect(JSON.stringify(history[2].event)).toBe(JSON.stringify({ type: 'STAGE_SUCCEEDED', stage: 'plan', attempt: 1, output, at: now }));
      expect(JSON.stringify((await mustGet(store, task.id)).snapshot.context.outputs)).toContain(JSON.stringify(output));
    });

    it('is all or nothing: when a checkpoint row cannot be written, neither the transition nor the task row changes', async () => {
      const engine = engineFor(store, db);
      const a = await engine.submit({ request: 'a' }, 'test');
      await engine.start(a.id, 'test');
      await succeedNextStage(engine, store, a.id, 'plan');
      const b = await engine.submit({ request: 'b' }, 'test');
      const atGate = await mustGet(store, a.id);
      const checkpointsBefore = await store.getCheckpoints(a.id);

      const allow = await db.refuseCheckpoints();
      now += 5;
      const approve = writeFor(atGate, { type: 'APPROVE', by: 'ann', at: now });
      expect(approve.checkpoints).toEqual(['start_implementation']);
      const startB = writeFor(b, { type: 'START', at: now });
      // B's write comes first in the batch and would succeed on its own: it must be rolled back too.
      await expect(store.commitTransitions([startB, approve])).rejects.toThrow(/checkpoint refused by test/);
      await allow();

      expect(await store.getTask(a.id)).toEqual(atGate);
      expect(await store.getTask(b.id)).toEqual(b);
      expect(await store.getHistory(a.id)).toHaveLength(3);
      expect(await store.getHistory(b.id)).toHaveLength(1);
      expect(await store.getCheckpoints(a.id)).toEqual(checkpointsBefore);

      const [ok] = await store.commitTransitions([approve]);
      expect(ok).toMatchObject({ ok: true, seq: 4, task: { state: 'implementing', version: 4 } });
    });

    it('refuses a write with a stale expectedVersion as a conflict and changes nothing', async () => {
      const engine = engineFor(store, db);
      const { task } = await engine.start((await engine.submit({ request: 'x' }, 'test')).id, 'test');
      const historyBefore = await store.getHistory(task.id);
      const runsBefore = await store.getStageRuns(task.id);
      const [result] = await store.commitTransitions([writeFor(task, { type: 'CANCEL', by: 'bob', at: now }, { expectedVersion: task.version - 1 })]);
      expect(result).toMatchObject({ ok: false, reason: 'conflict' });
      expect(result.ok ? '' : result.message).toBe(`task ${task.id} changed (version 2, expected 1)`);
      expect(await store.getTask(task.id)).toEqual(task);
      expect(await store.getHistory(task.id)).toEqual(historyBefore);
      expect(await store.getStageRuns(task.id)).toEqual(runsBefore);
    });

    it('reports an unknown task as missing', async () => {
      const engine = engineFor(store, db);
      const task = await engine.submit({ request: 'x' }, 'test');
      const [result] = await store.commitTransitions([{ ...writeFor(task, { type: 'START', at: now }), taskId: 999 }]);
      expect(result).toEqual({ ok: false, reason: 'missing', message: 'task 999 does not exist' });
      expect(await store.getHistory(999)).toEqual([]);
    });

    it('checks each write of a batch on its own: a conflicting one does not stop the others', async () => {
      const engine = engineFor(store, db);
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
      const engine = engineFor(store, db);
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
      const error = await store.createTask(newTask).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as Error).message).toMatch(/task 4242 does not exist/);
      await expect(engine.submit({ request: 'child', dependsOn: [4242] }, 'test')).rejects.toBeInstanceOf(TaskNotFoundError);
      expect((await store.listTasks()).map((t) => t.id)).toEqual([base.id]);
    });
  });

  describe('reading tasks', () => {
    it('listTasks filters by status, state, tag and ids, in id order, with a limit; countByStatus counts', async () => {
      const engine = engineFor(store, db);
      const a = await engine.submit({ request: 'a', tags: ['red', 'blue'] }, 'test');
      const b = await engine.submit({ request: 'b', tags: ['blue'] }, 'test');
      const c = await engine.submit({ request: 'c', tags: ['red'], dependsOn: [b.id, a.id] }, 'test');
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
      expect(Object.keys(await store.countByStatus())).toEqual(['cancelled', 'in_progress', 'pending']);
      expect(await store.getTask(999)).toBeNull();
      const list = await store.listTasks();
      for (const task of list) expect(await store.getTask(task.id)).toEqual(task);
    });
  });

  describe('optimistic concurrency across connections', () => {
    it('lets exactly one of two writers built from the same version win', async () => {
      const other = await db.open();
      const engineA = engineFor(store, db);
      const created = await engineA.submit({ request: 'contested' }, 'test');
      await engineA.start(created.id, 'test');
      await succeedNextStage(engineA, store, created.id, 'plan');
      const seenByA = await mustGet(store, created.id);
      const seenByB = await mustGet(other, created.id);
      expect(seenByB).toEqual(seenByA);
      const [approved] = await store.commitTransitions([writeFor(seenByA, { type: 'APPROVE', by: 'ann', at: now })]);
      const [cancelled] = await other.commitTransitions([writeFor(seenByB, { type: 'CANCEL', by: 'bob', at: now })]);
      expect(approved).toMatchObject({ ok: true, seq: 4 });
      expect(cancelled).toMatchObject({ ok: false, reason: 'conflict' });
      const after = await mustGet(other, created.id);
      expect(after).toMatchObject({ state: 'implementing', version: seenByA.version + 1 });
      expectUnbrokenHistory(await other.getHistory(created.id), after.version);
    });

    it('two engines racing approve against cancel on the same tasks never lose an update or repeat a seq', async () => {
      const other = await db.open();
      const engineA = engineFor(store, db);
      const engineB = engineFor(other, db);
      const ids: number[] = [];
      for (let i = 0; i < 8; i++) {
        const t = await engineA.submit({ request: `race ${i}` }, 'test');
        await engineA.start(t.id, 'test');
        await succeedNextStage(engineA, store, t.id, 'plan');
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
            // B's cancel has committed before A approves (a fixed 20 ms head start was not always enough
            // on a loaded machine); A still computes from its stale record, so its approve conflicts.
            const [cancelResult] = await Promise.allSettled([cancel()]);
            const [approveResult] = await Promise.allSettled([approve()]);
            return [approveResult, cancelResult];
          }),
        );
      const outcomes = [...(await race(ids.slice(0, 4), true)), ...(await race(ids.slice(4), false))];
      for (const [i, id] of ids.entries()) {
        const [approveResult, cancelResult] = outcomes[i];
        const task = await mustGet(store, id);
        const history = await other.getHistory(id);
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

    it('two processes writing the same tasks at once: no lost update, one START and one claim per run', async () => {
      const engine = engineFor(store, db);
      const hot = (await runningTask(engine)).id;
      const ids: number[] = [];
      for (let i = 0; i < 20; i++) ids.push((await engine.submit({ request: `shared ${i}` }, 'test')).id);
      const ROUNDS = 30;
      const script = `
        const { openStore } = await import(${dist('src/store/openStore.js')});
        const { Engine } = await import(${dist('src/engine/engine.js')});
        const { defaultConfig } = await import(${dist('src/config.js')});
        const [configJson, n, hot, idsJson, rounds] = process.argv.slice(1);
        const config = defaultConfig(JSON.parse(configJson));
        const store = await openStore(config);
        const engine = new Engine(store, config, Date.now);
        const me = 'proc-' + n;
        const report = { resumed: 0, hotClaims: [], started: [], claimed: [], cancelled: [], errors: [] };
        const note = (e) => { if (e.code !== 'INVALID_TRANSITION') report.errors.push(String(e.code) + ': ' + e.message); };
        for (let i = 0; i < Number(rounds); i++) {
          await store.claimRun(Number(hot), me, Date.now(), 60000).then((c) => c && report.hotClaims.push(c.run.attempt), note);
          await engine.apply(Number(hot), () => ({ type: 'RESUME', at: Date.now() }), me).then(() => report.resumed++, note);
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
      const config = JSON.stringify({ dataDir: db.dataDir, store: db.storeConfig });
      const results = await Promise.all([0, 1].map((n) => runNode(script, [config, String(n), String(hot), JSON.stringify(ids), String(ROUNDS)])));
      const reports = results.map((r) => {
        expect(r.err).toBe('');
        expect(r.code).toBe(0);
        return JSON.parse(r.out) as { resumed: number; hotClaims: number[]; started: number[]; claimed: number[]; cancelled: number[]; errors: string[] };
      });
      expect(reports.flatMap((r) => r.errors)).toEqual([]);
      expect(reports.map((r) => r.resumed)).toEqual([ROUNDS, ROUNDS]);
      const hotTask = await mustGet(store, hot);
      const hotHistory = await store.getHistory(hot);
      expect(hotHistory).toHaveLength(2 + 2 * ROUNDS);
      expectUnbrokenHistory(hotHistory, hotTask.version);
      expect(replayHistory(hotHistory)).toEqual(hotTask.snapshot);
      const hotClaims = reports.flatMap((r) => r.hotClaims).sort((x, y) => x - y);
      expect(new Set(hotClaims).size).toBe(hotClaims.length);
      expect((await store.getStageRuns(hot)).map((r) => r.attempt).sort((x, y) => x - y)).toEqual(hotClaims);
      const sorted = (xs: number[]) => [...xs].sort((x, y) => x - y);
      expect(sorted(reports.flatMap((r) => r.started))).toEqual(ids);
      expect(sorted(reports.flatMap((r) => r.claimed))).toEqual(ids);
      expect(sorted(reports.flatMap((r) => r.cancelled))).toEqual(ids);
      for (const id of ids) {
        const history = await store.getHistory(id);
        expect(history.map((h) => h.event.type)).toEqual(['SUBMIT', 'START', 'CANCEL']);
        expect((await store.getStageRuns(id)).map((r) => [r.attempt, r.outcome])).toEqual([[1, 'superseded']]);
      }
    });
  });

  describe('leases and fencing', () => {
    it('a stage result can claim the next run with its write: the run is recorded, the lease taken, the token bumped', async () => {
      const engine = engineFor(store, db, { approvals: { plan: 'auto', implementation: 'auto' } });
      const created = await engine.submit({ request: 'back to back' }, 'test');
      const started = await engine.start(created.id, 'test', { sessionId: 'sess-a', leaseMs: LEASE_MS });
      expect(started.claimed?.run).toMatchObject({ stage: 'plan', attempt: 1, runId: `${created.id}.plan.1`, sessionId: 'sess-a', startedAt: now });
      expect(started.task.lease).toEqual({ owner: 'sess-a', expiresAt: now + LEASE_MS, token: 1 });
      expect(started.claimed?.lease).toEqual(started.task.lease);
      expect(await store.findRunnable(now, 10)).toEqual([]);

      now += 1;
      const event = { type: 'STAGE_SUCCEEDED' as const, stage: 'plan' as const, attempt: 1, output: 'plan', at: now };
      const { task, claimed } = await engine.recordStageResult(created.id, event, 'daemon:test', 1, { sessionId: 'sess-a', leaseMs: LEASE_MS });
      expect(task).toMatchObject({ state: 'implementing', runStage: 'implement', runAttempt: 1, lease: { owner: 'sess-a', expiresAt: now + LEASE_MS, token: 2 } });
      expect(claimed?.run).toMatchObject({ stage: 'implement', attempt: 1, sessionId: 'sess-a', startedAt: now, outcome: null });
      // What was returned is what was stored.
      expect(await mustGet(await db.open(), created.id)).toEqual(task);
      expect((await store.getStageRuns(created.id)).map((r) => [r.stage, r.outcome])).toEqual([
        ['plan', 'succeeded'],
        ['implement', null],
      ]);
      // The claimed run is fenced like any other: a second claim gets nothing.
      expect(await store.claimRun(created.id, 'sess-b', now, LEASE_MS)).toBeNull();
    });

    it('the record a write returns is the row as stored, whatever the write changed: lease taken, kept, handed over or released; status kept or changed', async () => {
      const engine = engineFor(store, db, { approvals: { plan: 'manual', implementation: 'auto' } });
      const dependency = await engine.submit({ request: 'first' }, 'test');
      await engine.cancel(dependency.id, 'test');
      const created = await engine.submit({ request: 'shapes', priority: 'high', tags: ['a', 'b'], dependsOn: [dependency.id] }, 'test');
      const stored = async (id: number) => mustGet(await db.open(), id);
      const result = (stage: 'plan' | 'implement' | 'review', attempt: number) =>
        ({ type: 'STAGE_SUCCEEDED' as const, stage, attempt, output: stage === 'review' ? { verdict: 'approve' } : stage, at: now });
      const steps: [string, () => Promise<{ task: TaskRecord }>][] = [
        ['start, lease taken', () => engine.start(created.id, 'test', { sessionId: 'sess-a', leaseMs: LEASE_MS })],
        ['plan result, lease released, status changed', () => engine.recordStageResult(created.id, result('plan', 1), 'test', 1)],
        ['approve, no lease before or after, status changed', () => engine.approve(created.id, 'bob')],
        ['implement result, lease kept by the same session, status kept', async () => {
          const claim = (await store.claimRun(created.id, 'sess-a', now, LEASE_MS))!;
          return engine.recordStageResult(created.id, result('implement', 1), 'test', claim.lease.token, { sessionId: 'sess-a', leaseMs: LEASE_MS });
        }],
        ['review result, lease handed to another session', async () => {
          const { lease } = await stored(created.id);
          return engine.recordStageResult(created.id, result('review', 1), 'test', lease!.token, { sessionId: 'sess-b', leaseMs: LEASE_MS });
        }],
        ['cancel, lease released, status changed', () => engine.cancel(created.id, 'bob')],
      ];
      for (const [what, write] of steps) {
        now += 1;
        const { task } = await write();
        expect({ what, task: JSON.parse(JSON.stringify(task)) }).toEqual({ what, task: JSON.parse(JSON.stringify(await stored(created.id))) });
        expect(task).toEqual(await stored(created.id));
      }
      expect(await stored(created.id)).toMatchObject({ state: 'cancelled', priority: 'high', tags: ['a', 'b'], dependsOn: [dependency.id], lease: null });
    });

    it('claims nothing with a write for a stale session, or for a retry still in its backoff; dispatch claims those later', async () => {
      const engine = engineFor(store, db, { limits: { retryBackoff: '5s' } });
      await store.createSession({ id: 'sess-frozen', pid: 1, host: 'h', at: now });
      await store.endSession('sess-frozen', 'stale', now);
      const created = await engine.submit({ request: 'stale' }, 'test');
      const started = await engine.start(created.id, 'test', { sessionId: 'sess-frozen', leaseMs: LEASE_MS });
      expect(started.claimed).toBeUndefined();
      expect(started.task).toMatchObject({ state: 'planning', runStage: 'plan', lease: null });
      expect(await store.getStageRuns(created.id)).toEqual([]);

      const claim = (await store.claimRun(created.id, 'sess-a', now, LEASE_MS))!;
      const failed = await engine.recordStageResult(
        created.id,
        { type: 'STAGE_FAILED', stage: 'plan', attempt: 1, reason: 'exit', message: 'exit 3', exitCode: 3, at: now },
        'test',
        claim.lease.token,
        { sessionId: 'sess-a', leaseMs: LEASE_MS },
      );
      expect(failed.claimed).toBeUndefined();
      expect(failed.task).toMatchObject({ runStage: 'plan', runAttempt: 2, runAfter: now + 5000, lease: null });
      expect((await store.claimRun(created.id, 'sess-a', now + 5000, LEASE_MS))?.run.attempt).toBe(2);
    });

    it('a result claims no next stage while a higher-priority task waits for a slot: dispatch order decides', async () => {
      const engine = engineFor(store, db, { approvals: { plan: 'auto', implementation: 'auto' } });
      const low = await engine.submit({ request: 'low', priority: 'low' }, 'test');
      const lowStarted = await engine.start(low.id, 'test', { sessionId: 'sess-a', leaseMs: LEASE_MS });
      expect(lowStarted.claimed?.run.stage).toBe('plan');
      const high = await engine.submit({ request: 'high', priority: 'high' }, 'test');
      await engine.start(high.id, 'test'); // its plan run waits for a slot
      now += 1;
      const event = { type: 'STAGE_SUCCEEDED' as const, stage: 'plan' as const, attempt: 1, output: 'plan', at: now };
      const after = await engine.recordStageResult(low.id, event, 'daemon:test', lowStarted.task.lease!.token, { sessionId: 'sess-a', leaseMs: LEASE_MS });
      expect(after.claimed).toBeUndefined();
      expect(after.task).toMatchObject({ state: 'implementing', runStage: 'implement', lease: null });
      expect((await store.findRunnable(now, 10)).map((t) => t.id)).toEqual([high.id, low.id]);

      // With nothing of higher priority waiting, the next result claims as before.
      await store.claimRun(high.id, 'sess-b', now, LEASE_MS);
      const implement = (await store.claimRun(low.id, 'sess-a', now, LEASE_MS))!;
      now += 1;
      const done = { type: 'STAGE_SUCCEEDED' as const, stage: 'implement' as const, attempt: 1, output: 'impl', at: now };
      const next = await engine.recordStageResult(low.id, done, 'daemon:test', implement.lease.token, { sessionId: 'sess-a', leaseMs: LEASE_MS });
      expect(next.claimed?.run.stage).toBe('review');
    });

    it('a higher-priority run left waiting earlier in the same group commit stops a later result from claiming', async () => {
      const engine = engineFor(store, db, { approvals: { plan: 'auto', implementation: 'auto' } });
      const lease = { sessionId: 'sess-a', leaseMs: LEASE_MS };
      const medium = await engine.submit({ request: 'medium', priority: 'medium' }, 'test');
      const mediumStarted = await engine.start(medium.id, 'test', lease);
      const low = await engine.submit({ request: 'low', priority: 'low' }, 'test');
      const lowStarted = await engine.start(low.id, 'test', lease);
      const high = await engine.submit({ request: 'high', priority: 'high' }, 'test');
      now += 1;
      const planned = { type: 'STAGE_SUCCEEDED' as const, stage: 'plan' as const, attempt: 1, output: 'plan', at: now };
      // One batch, in this order: the medium result (nothing waits, it claims), the high START (its plan
      // run is left waiting: it asks no claim), then the low result, which must now yield.
      const mediumTask = await mustGet(store, medium.id);
      const lowTask = await mustGet(store, low.id);
      const [mediumAfter, highStarted, lowAfter] = await store.commitTransitions([
        { ...writeFor(mediumTask, planned, { leaseToken: mediumStarted.task.lease!.token }), claimFor: lease },
        writeFor(high, { type: 'START', at: now }),
        { ...writeFor(lowTask, planned, { leaseToken: lowStarted.task.lease!.token }), claimFor: lease },
      ]);
      if (!mediumAfter.ok || !highStarted.ok || !lowAfter.ok) throw new Error('a write of the batch was refused');
      // SQLite claims write by write inside the batch, so the medium result, before the START, still
      // claims; PostgreSQL claims once the batch has committed, when the high run already waits.
      expect(mediumAfter.claimed?.run.stage).toBe(backend.name === 'sqlite' ? 'implement' : undefined);
      expect(highStarted.task).toMatchObject({ state: 'planning', runStage: 'plan', lease: null });
      expect(lowAfter.claimed).toBeUndefined();
      expect(lowAfter.task).toMatchObject({ state: 'implementing', runStage: 'implement', lease: null });
      const waiting = backend.name === 'sqlite' ? [high.id, low.id] : [high.id, medium.id, low.id];
      expect((await store.findRunnable(now, 10)).map((t) => t.id)).toEqual(waiting);
    });

    it('claimRun takes the lease, records the run and bumps the token; a second claim gets nothing', async () => {
      const other = await db.open();
      const engine = engineFor(store, db);
      const task = await runningTask(engine);
      expect(task).toMatchObject({ state: 'planning', runStage: 'plan', runAttempt: 1, lease: null });
      // The token is a column of its own, kept while no lease is held: a claim bumps what is stored.
      const [{ lease_token: tokenBefore }] = await db.exec('SELECT lease_token FROM tasks WHERE id = ?', [task.id]);
      expect(Number(tokenBefore)).toBe(0);
      expect((await store.findRunnable(now, 10)).map((t) => t.id)).toEqual([task.id]);
      const claim = await store.claimRun(task.id, 'sess-a', now, LEASE_MS);
      expect(claim!.lease).toEqual({ owner: 'sess-a', expiresAt: now + LEASE_MS, token: Number(tokenBefore) + 1 });
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
      expect(claim!.task).toEqual(await mustGet(store, task.id));
      expect(claim!.task.version).toBe(task.version);
      expect(await store.getStageRuns(task.id)).toEqual([claim!.run]);
      expect(await other.claimRun(task.id, 'sess-b', now, LEASE_MS)).toBeNull();
      expect(await store.claimRun(task.id, 'sess-a', now, LEASE_MS)).toBeNull();
      expect((await mustGet(other, task.id)).lease?.owner).toBe('sess-a');
      expect(await store.findRunnable(now, 10)).toEqual([]);
      await store.recordRunProcess(task.id, 'plan', 1, 4321);
      expect((await store.getStageRuns(task.id))[0].pgid).toBe(4321);
    });

    it('a task read back serialises whole: JSON output carries its snapshot', async () => {
      const engine = engineFor(store, db);
      const task = await mustGet(store, (await runningTask(engine)).id);
      const json = JSON.parse(JSON.stringify(task));
      expect(json.snapshot).toEqual(task.snapshot);
      expect(json.snapshot.value).toBe('planning');
      expect(json).toMatchObject({ id: task.id, state: 'planning', version: task.version });
    });

    it('claimRuns claims a round of runs together and leaves out what cannot be claimed', async () => {
      const engine = engineFor(store, db);
      const a = await runningTask(engine);
      const b = await runningTask(engine);
      const taken = await runningTask(engine);
      await store.claimRun(taken.id, 'sess-b', now, LEASE_MS);
      const pending = await engine.submit({ request: 'not started' }, 'test');

      const claims = await store.claimRuns([b.id, taken.id, a.id, pending.id], 'sess-a', now, LEASE_MS);
      expect(claims.map((c) => c.task.id).sort((x, y) => x - y)).toEqual([a.id, b.id]);
      for (const c of claims) {
        expect(c.lease).toEqual({ owner: 'sess-a', expiresAt: now + LEASE_MS, token: 1 });
        expect(c.run).toMatchObject({ taskId: c.task.id, stage: 'plan', attempt: 1, sessionId: 'sess-a', outcome: null });
        expect(c.task).toEqual(await mustGet(store, c.task.id));
      }
      expect((await mustGet(store, taken.id)).lease?.owner).toBe('sess-b');
      expect(await store.claimRuns([], 'sess-a', now, LEASE_MS)).toEqual([]);
    });

    it('ending a session expires its leases: its tasks are resumable, and no lease outlives its holder', async () => {
      const engine = engineFor(store, db);
      await store.createSession({ id: 'ending', pid: 1, host: 'elsewhere', at: now });
      const task = await runningTask(engine);
      await store.claimRun(task.id, 'ending', now, LEASE_MS);
      await store.endSession('ending', 'stopped', now + 10);
      const after = await mustGet(store, task.id);
      expect(after.lease).toMatchObject({ owner: 'ending', expiresAt: now + 10 });
      expect((await store.findResumable(now + 10)).map((t) => t.id)).toEqual([task.id]);
    });

    it('does not start a run twice: with its lease lost but the run recorded, a claim gets nothing and changes nothing', async () => {
      const engine = engineFor(store, db);
      const task = await runningTask(engine);
      const claim = (await store.claimRun(task.id, 'sess-a', now, LEASE_MS))!;
      // A lease cleared by hand (or by a bug) must not let the same attempt start again.
      await db.exec('UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ?', [task.id]);
      const before = await mustGet(store, task.id);
      expect(await store.claimRun(task.id, 'sess-b', now + 1, LEASE_MS)).toBeNull();
      expect(await mustGet(store, task.id)).toEqual(before);
      expect(await store.getStageRuns(task.id)).toEqual([claim.run]);
    });

    it('many connections claiming the same runs at once: exactly one gets each', async () => {
      const stores = [store, await db.open(), await db.open()];
      const engine = engineFor(store, db);
      const tasks: TaskRecord[] = [];
      for (let i = 0; i < 6; i++) tasks.push(await runningTask(engine));
      const claims = await Promise.all(tasks.flatMap((t) => stores.map((s, n) => s.claimRun(t.id, `sess-${n}`, now, LEASE_MS))));
      for (const [i, t] of tasks.entries()) {
        const won = claims.slice(stores.length * i, stores.length * (i + 1)).filter((c) => c !== null);
        expect(won).toHaveLength(1);
        expect(await store.getStageRuns(t.id)).toEqual([won[0]!.run]);
        expect((await mustGet(store, t.id)).lease).toEqual(won[0]!.lease);
      }
    });

    it('a session marked stale or ended takes no new lease', async () => {
      const engine = engineFor(store, db);
      const task = await runningTask(engine);
      await store.createSession({ id: 'frozen', pid: 1, host: 'elsewhere', at: now });
      await store.endSession('frozen', 'stale', now);
      expect(await store.claimRun(task.id, 'frozen', now, LEASE_MS)).toBeNull();
      expect(await store.getStageRuns(task.id)).toEqual([]);
      expect((await store.claimRun(task.id, 'fresh', now, LEASE_MS))?.lease.owner).toBe('fresh');
    });

    it('does not claim a retry before its backoff has passed', async () => {
      const engine = engineFor(store, db, { limits: { retryBackoff: '5s' } });
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
      const engine = engineFor(store, db);
      const task = await runningTask(engine);
      const claim = (await store.claimRun(task.id, 'sess-a', now, LEASE_MS))!;
      const before = await mustGet(store, task.id);
      const event = { type: 'STAGE_SUCCEEDED' as const, stage: 'plan' as const, attempt: 1, output: 'plan', at: now };
      const refused = await engine.recordStageResult(task.id, event, 'test', claim.lease.token - 1).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(StageResultRefused);
      expect((refused as StageResultRefused).reason).toBe('fenced');
      expect((refused as StageResultRefused).code).toBe('STAGE_RESULT_REFUSED');
      expect((refused as Error).message).toBe(`task ${task.id}: the lease for plan attempt 1 was lost (token 0, now 1)`);
      expect(await mustGet(store, task.id)).toEqual(before);
      expect(await store.getHistory(task.id)).toHaveLength(2);
      expect((await store.getStageRuns(task.id))[0].outcome).toBeNull();
      const { task: done } = await engine.recordStageResult(task.id, event, 'test', claim.lease.token);
      expect(done).toMatchObject({ state: 'plan_awaiting_approval', lease: null, runStage: null });
      expect((await store.getStageRuns(task.id))[0]).toMatchObject({ outcome: 'succeeded', finishedAt: now, exitCode: 0 });
    });

    it('records a completion once: a repeat is refused by the engine, the store and the UNIQUE index', async () => {
      const engine = engineFor(store, db);
      const task = await runningTask(engine);
      const claim = (await store.claimRun(task.id, 'sess-a', now, LEASE_MS))!;
      const event = { type: 'STAGE_SUCCEEDED' as const, stage: 'plan' as const, attempt: 1, output: 'plan', at: now };
      const write = writeFor(await mustGet(store, task.id), event, { leaseToken: claim.lease.token });
      const [first] = await store.commitTransitions([write]);
      expect(first.ok).toBe(true);
      const results = async () =>
        Number(
          (
            await db.exec(
              `SELECT count(*) AS n FROM transitions WHERE task_id = ? AND stage = 'plan' AND attempt = 1
               AND event_type IN ('STAGE_SUCCEEDED', 'STAGE_FAILED')`,
              [task.id],
            )
          )[0].n,
        );
      expect(await results()).toBe(1);
      await expect(engine.recordStageResult(task.id, event, 'test', claim.lease.token)).rejects.toBeInstanceOf(StageResultRefused);

      const current = await mustGet(store, task.id);
      const [replayed] = await store.commitTransitions([{ ...write, expectedVersion: current.version }]);
      expect(replayed).toMatchObject({ ok: false, reason: 'fenced' });

      await db.exec('UPDATE tasks SET lease_owner = ?, lease_expires_at = ? WHERE id = ?', ['sess-a', now + LEASE_MS, task.id]);
      const [duplicate] = await store.commitTransitions([{ ...write, expectedVersion: current.version }]);
      expect(duplicate).toEqual({ ok: false, reason: 'duplicate', message: `task ${task.id}: plan attempt 1 was already recorded` });

      await db.exec("UPDATE stage_runs SET outcome = NULL, finished_at = NULL WHERE task_id = ? AND stage = 'plan'", [task.id]);
      const error = await store.commitTransitions([{ ...write, expectedVersion: current.version }]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as Error).message).toBe(`task ${task.id}: plan attempt 1 already has a recorded result`);
      expect((await store.getStageRuns(task.id))[0].outcome).toBeNull();
      expect((await mustGet(store, task.id)).version).toBe(current.version);
      expect(await results()).toBe(1);

      // Direct SQL is held to the same rule.
      for (const [seq, type] of [[100, 'STAGE_FAILED'], [101, 'STAGE_SUCCEEDED']] as const) {
        await expect(
          db.exec(
            `INSERT INTO transitions (task_id, seq, from_state, to_state, event_type, stage, attempt, event, actor, at)
             VALUES (?, ?, 'planning', 'planning', ?, 'plan', 1, '{}', 'sql', 0)`,
            [task.id, seq, type],
          ),
        ).rejects.toThrow(backend.name === 'sqlite' ? /UNIQUE constraint failed/ : /unique constraint/);
      }
      expect(await results()).toBe(1);
    });

    it('fences a late result after the task was cancelled under the running stage', async () => {
      const engine = engineFor(store, db);
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
      const engine = engineFor(store, db);
      for (const [name, priority] of [
        ['low-old', 'low'],
        ['medium-old', 'medium'],
        ['high-old', 'high'],
        ['high-new', 'high'],
        ['medium-new', 'medium'],
        ['low-new', 'low'],
      ] as const) {
        now += 1000;
        await engine.submit({ request: name, priority }, 'test');
      }
      const started = await engine.submit({ request: 'already started', priority: 'high' }, 'test');
      await engine.start(started.id, 'test');
      expect((await store.findDispatchable(10)).map((t) => t.request)).toEqual(['high-old', 'high-new', 'medium-old', 'medium-new', 'low-old', 'low-new']);
      expect((await store.findDispatchable(2)).map((t) => t.request)).toEqual(['high-old', 'high-new']);
    });

    it('findDispatchable holds back a task until every dependency is completed', async () => {
      const engine = engineFor(store, db, { approvals: { plan: 'auto', implementation: 'auto' } });
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

    it('findResumable returns tasks of gone sessions and expired leases; heartbeats renew only live sessions', async () => {
      const engine = engineFor(store, db);
      const sessions = ['live', 'crashed', 'stopped', 'stale', 'expired'];
      for (const id of sessions) await store.createSession({ id, pid: 1, host: 'test', at: now });
      const task: Record<string, number> = {};
      for (const owner of [...sessions, 'unknown']) {
        const t = await runningTask(engine);
        task[owner] = t.id;
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

      const liveLease = (await mustGet(store, task.live)).lease;
      await store.heartbeatSession('expired', now, LEASE_MS);
      expect((await mustGet(store, task.expired)).lease?.expiresAt).toBe(now + LEASE_MS);
      expect((await mustGet(store, task.live)).lease).toEqual(liveLease);
      expect((await store.listSessions({ status: 'active' })).find((s) => s.id === 'expired')?.lastHeartbeatAt).toBe(now);
      expect(await resumableAt(now)).toEqual([task.crashed, task.stopped, task.stale, task.unknown]);
      await store.heartbeatSession('crashed', now, LEASE_MS);
      expect((await store.listSessions({ status: 'crashed' })).map((s) => s.id)).toEqual(['crashed']);

      const oldToken = (await mustGet(store, task.crashed)).lease!.token;
      const { task: resumed } = await engine.resume(task.crashed, 'daemon:test', async () => false);
      expect(resumed).toMatchObject({ state: 'planning', runStage: 'plan', runAttempt: 2, lease: null });
      const reclaim = await store.claimRun(task.crashed, 'live', now, LEASE_MS);
      expect(reclaim?.lease.token).toBe(oldToken + 1);
      expect((await store.getStageRuns(task.crashed)).map((r) => [r.attempt, r.outcome])).toEqual([
        [1, 'interrupted'],
        [2, null],
      ]);
      const stale = engine.recordStageResult(task.crashed, { type: 'STAGE_SUCCEEDED', stage: 'plan', attempt: 1, output: 'old', at: now }, 'test', oldToken);
      await expect(stale).rejects.toBeInstanceOf(StageResultRefused);
    });

    it('listOpenRuns lists every task\'s started and unended runs, and no run that has an outcome', async () => {
      const engine = engineFor(store, db);
      const running = await runningTask(engine);
      const finished = await runningTask(engine);
      const interrupted = await runningTask(engine);
      const other = await runningTask(engine);
      const claims = new Map<number, Awaited<ReturnType<Store['claimRun']>>>();
      for (const t of [running, finished, interrupted]) claims.set(t.id, await store.claimRun(t.id, 'sess-a', now, LEASE_MS));
      claims.set(other.id, await store.claimRun(other.id, 'sess-b', now, LEASE_MS));
      await succeedNextStage(engine, store, (await runningTask(engine)).id, { steps: [] });
      await engine.recordStageResult(
        finished.id,
        { type: 'STAGE_SUCCEEDED', stage: 'plan', attempt: 1, output: 'done', at: now },
        'test',
        claims.get(finished.id)!.lease.token,
      );
      await store.endSession('sess-a', 'crashed', now);
      await engine.resume(interrupted.id, 'daemon:test', async () => false);

      const open = await store.listOpenRuns();
      expect(open).toEqual([claims.get(running.id)!.run, claims.get(other.id)!.run]);
      // The same records one task's runs read gives.
      expect(open[0]).toEqual((await store.getStageRuns(running.id))[0]);
    });

    it('re-checks the lease it judged dead: a task another daemon resumed and claimed meanwhile is left alone', async () => {
      const daemon = await db.open();
      const cliEngine = engineFor(store, db);
      const daemonEngine = engineFor(daemon, db);
      const task = await runningTask(cliEngine);
      await store.createSession({ id: 'dead', pid: 1, host: 'test', at: now });
      await store.claimRun(task.id, 'dead', now, LEASE_MS);
      await store.endSession('dead', 'crashed', now);
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
      expect(await mustGet(store, task.id)).toMatchObject({ state: 'planning', runAttempt: 2, lease: { owner: 'other' } });
      expect((await store.getStageRuns(task.id)).map((r) => [r.attempt, r.sessionId, r.outcome])).toEqual([
        [1, 'dead', 'interrupted'],
        [2, 'other', null],
      ]);
      expect((await store.getHistory(task.id)).map((h) => h.event.type)).toEqual(['SUBMIT', 'START', 'RESUME']);
    });
  });

  describe('checkpoints and rewind', () => {
    it('rewind to a checkpoint the task has not reached lists the ones it has; a reached one works and keeps history', async () => {
      const engine = engineFor(store, db);
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
      expect((await store.claimRun(task.id, 'sess', now, LEASE_MS))?.run.attempt).toBe(2);
    });
  });

  describe('sessions', () => {
    it('creates, lists newest first, renews and ends sessions; an ended session is not revived', async () => {
      const first = await store.createSession({ id: 'one', pid: 11, host: 'h1', at: now });
      expect(first).toEqual({ id: 'one', pid: 11, host: 'h1', startedAt: now, lastHeartbeatAt: now, status: 'active', endedAt: null });
      await store.createSession({ id: 'two', pid: 12, host: 'h2', at: now + 1 });
      expect((await store.listSessions()).map((s) => s.id)).toEqual(['two', 'one']);
      await store.heartbeatSession('one', now + 10, LEASE_MS);
      await store.endSession('two', 'stopped', now + 20);
      expect(await store.listSessions({ status: 'active' })).toEqual([{ ...first, lastHeartbeatAt: now + 10 }]);
      expect(await store.listSessions({ status: 'stopped' })).toEqual([
        { id: 'two', pid: 12, host: 'h2', startedAt: now + 1, lastHeartbeatAt: now + 1, status: 'stopped', endedAt: now + 20 },
      ]);
      await store.heartbeatSession('two', now + 30, LEASE_MS);
      await store.endSession('two', 'crashed', now + 40);
      expect((await store.listSessions({ status: 'stopped' }))[0]).toMatchObject({ lastHeartbeatAt: now + 1, endedAt: now + 20 });
    });

    it('a claim counts as a heartbeat: the session cannot go silent before the lease it just took runs out', async () => {
      const engine = engineFor(store, db);
      await store.createSession({ id: 'claimer', pid: 13, host: 'h3', at: now });
      const task = await runningTask(engine);
      const claim = await store.claimRun(task.id, 'claimer', now + 5000, LEASE_MS);
      expect(claim!.lease.expiresAt).toBe(now + 5000 + LEASE_MS);
      const session = (await store.listSessions()).find((s) => s.id === 'claimer')!;
      // Silent from the same instant its lease expires, never earlier.
      expect(session.lastHeartbeatAt).toBe(now + 5000);
      // An older claim time never moves the heartbeat back.
      const second = await runningTask(engine);
      await store.claimRun(second.id, 'claimer', now + 1000, LEASE_MS);
      expect((await store.listSessions()).find((s) => s.id === 'claimer')!.lastHeartbeatAt).toBe(now + 5000);
    });
  });

  describe('notes and intake keys', () => {
    it('records notes with a task, with a transition, and for a scope, and lists them in order', async () => {
      const engine = engineFor(store, db);
      const task = await runningTask(engine);
      const base = { scope: null, rationale: null, impact: null, category: null, stage: null, attempt: null, actor: 'ann', at: now };
      const [decision] = await store.addNotes([{ ...base, taskId: task.id, kind: 'decision', text: 'use postgres', rationale: 'many daemons', source: 'cli' }]);
      expect(decision).toMatchObject({ id: expect.any(Number), text: 'use postgres' });
      const claim = (await store.claimRun(task.id, 'sess', now, LEASE_MS))!;
      const stageNote: NewNote = { ...base, taskId: task.id, kind: 'insight', text: 'indexes matter', category: 'perf', stage: 'plan', attempt: 1, source: 'stage' };
      const event = { type: 'STAGE_SUCCEEDED' as const, stage: 'plan' as const, attempt: 1, output: 'p', at: now };
      const [ok] = await store.commitTransitions([writeFor(claim.task, event, { leaseToken: claim.lease.token, notes: [stageNote] })]);
      expect(ok.ok).toBe(true);
      // A refused write records none of its notes.
      const [refused] = await store.commitTransitions([writeFor(claim.task, event, { leaseToken: claim.lease.token, notes: [{ ...stageNote, text: 'lost' }] })]);
      expect(refused).toMatchObject({ ok: false, reason: 'conflict' });
      await store.addNotes([{ ...base, taskId: null, scope: 'exp-1', kind: 'insight', text: 'scoped', source: 'import' }]);
      const notes = await store.listNotes({ taskId: task.id });
      expect(notes.map((n) => [n.kind, n.text, n.source, n.stage])).toEqual([
        ['decision', 'use postgres', 'cli', null],
        ['insight', 'indexes matter', 'stage', 'plan'],
      ]);
      expect(notes[1]).toEqual({ ...stageNote, id: expect.any(Number) });
      expect((await store.listNotes({ scope: 'exp-1' })).map((n) => n.text)).toEqual(['scoped']);
    });

    it('createTasksOnce creates a batch once, with in-batch dependencies; the same key again creates nothing', async () => {
      const engine = engineFor(store, db);
      const first = await engine.submitOnce({ source: 'inbox', key: 'abc' }, [{ request: 'one' }, { request: 'two', dependsOnBatch: [0] }], 'inbox');
      expect(first.isNew).toBe(true);
      const [one, two] = first.tasks;
      expect(two.dependsOn).toEqual([one.id]);
      expect((await store.getHistory(two.id))[0].event).toMatchObject({ type: 'SUBMIT', depends_on: [one.id] });
      const again = await engine.submitOnce({ source: 'inbox', key: 'abc' }, [{ request: 'one' }, { request: 'two', dependsOnBatch: [0] }], 'inbox');
      expect(again).toEqual({ tasks: first.tasks, isNew: false });
      expect((await store.listTasks()).map((t) => t.request)).toEqual(['one', 'two']);
      expect(await store.findIntake({ source: 'inbox', key: 'abc' })).toEqual([one.id, two.id]);
      expect(await store.findIntake({ source: 'inbox', key: 'other' })).toBeNull();
    });

    it('importTask stores a task with its whole history once per key; an ended session can be recorded', async () => {
      const engine = engineFor(store, db, { approvals: { plan: 'auto', implementation: 'auto' } });
      const source = await runningTask(engine);
      await succeedNextStage(engine, store, source.id, { plan: 1 });
      const done = await mustGet(store, source.id);
      const history = await store.getHistory(source.id);
      const checkpoints = await store.getCheckpoints(source.id);
      await store.recordEndedSession({ id: 'old-tool', pid: 7, host: 'import', startedAt: now, lastHeartbeatAt: now + 5, status: 'stopped' });
      await store.recordEndedSession({ id: 'old-tool', pid: 7, host: 'import', startedAt: now, lastHeartbeatAt: now + 5, status: 'stopped' });
      expect(await store.listSessions({ status: 'stopped' })).toEqual([
        { id: 'old-tool', pid: 7, host: 'import', startedAt: now, lastHeartbeatAt: now + 5, status: 'stopped', endedAt: now + 5 },
      ]);
      const imported = {
        request: 'imported',
        priority: 'high' as const,
        tags: ['legacy'],
        dependsOn: [source.id],
        transitions: history.map(({ seq: _seq, ...rest }) => rest),
        checkpoints: checkpoints.map(({ seq, ...rest }) => ({ ...rest, transitionIndex: seq - 1 })),
        runs: [{ stage: 'plan' as const, attempt: 1, startedAt: now, finishedAt: now, outcome: 'succeeded' as const, exitCode: 0 }],
        state: done.state,
        status: done.status,
        snapshot: done.snapshot,
        nextRun: { stage: 'implement' as const, attempt: 1, notBefore: null },
        lease: null,
        createdAt: done.createdAt,
        updatedAt: done.updatedAt,
      };
      const first = await store.importTask({ source: 'import:test', key: 'item-1' }, imported, (id) => [
        { taskId: id, scope: null, kind: 'insight', text: 'came from elsewhere', rationale: null, impact: null, category: null, stage: null, attempt: null, source: 'import', actor: 'import', at: now },
      ]);
      expect(first.isNew).toBe(true);
      expect(first.task).toMatchObject({ request: 'imported', priority: 'high', tags: ['legacy'], dependsOn: [source.id], state: 'implementing', version: history.length, runStage: 'implement', lease: null });
      expect(await store.getHistory(first.task.id)).toEqual(history);
      expect(replayHistory(await store.getHistory(first.task.id))).toEqual(first.task.snapshot);
      expect((await store.getCheckpoints(first.task.id)).map((c) => [c.name, c.seq])).toEqual(checkpoints.map((c) => [c.name, c.seq]));
      expect((await store.getStageRuns(first.task.id)).map((r) => [r.runId, r.sessionId, r.outcome])).toEqual([[`${first.task.id}.plan.1`, 'import', 'succeeded']]);
      expect((await store.listNotes({ taskId: first.task.id })).map((n) => n.text)).toEqual(['came from elsewhere']);
      const again = await store.importTask({ source: 'import:test', key: 'item-1' }, imported);
      expect(again).toEqual({ task: first.task, isNew: false });
      expect(await store.listTasks()).toHaveLength(2);
      // The imported task runs on like any other: its next stage can be claimed.
      expect((await store.claimRun(first.task.id, 'sess', now, LEASE_MS))?.run.attempt).toBe(1);
    });
  });

  describe('the change marker', () => {
    it('moves when another connection commits', async () => {
      const engine = engineFor(store, db);
      const watcher = await db.open();
      const marker = await watcher.changeMarker();
      await engine.submit({ request: 'another' }, 'test');
      await waitFor(async () => (await watcher.changeMarker()) !== marker, { what: 'the change marker to move', timeoutMs: 2000 });
      const moved = await watcher.changeMarker();
      const created = await engine.submit({ request: 'and a transition' }, 'test');
      await waitFor(async () => (await watcher.changeMarker()) !== moved, { what: 'the change marker to move again', timeoutMs: 2000 });
      const again = await watcher.changeMarker();
      await engine.start(created.id, 'test');
      await waitFor(async () => (await watcher.changeMarker()) !== again, { what: 'the change marker to move on a transition', timeoutMs: 2000 });
    });
  });
});
