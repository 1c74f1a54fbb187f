/**
 * What only the PostgreSQL store has to prove (the shared contract is in store.contract.test.ts):
 * migrations under an advisory lock with several processes opening at once, a schema newer than the
 * binary refused, clear errors for a server that cannot be reached, schemas kept apart, and cut
 * connections: the pool and the listener reconnect, and a statement cut mid-flight is tried again
 * without applying twice. Every test works in schemas of its own, dropped afterwards.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { ConfigError, StoreError, StoreUnavailableError } from '../src/errors.js';
import { loadMigrations } from '../src/store/migrate.js';
import { openPostgresStore, type PostgresStore } from '../src/store/postgres.js';
import { adminQuery, dropTestSchemas, newTestSchema, PG_URL, schemaUrl, terminateBackends } from './helpers/postgres.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MIGRATIONS = loadMigrations('postgres');
const opened: PostgresStore[] = [];

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
});

afterAll(async () => {
  await dropTestSchemas();
});

async function open(url: string): Promise<PostgresStore> {
  const store = await openPostgresStore(url);
  opened.push(store);
  return store;
}

function engineFor(store: PostgresStore): Engine {
  return new Engine(store, defaultConfig({ approvals: { plan: 'auto', implementation: 'auto' } }, tempDir()));
}

async function openError(url: string): Promise<Error> {
  try {
    await open(url);
  } catch (e) {
    return e as Error;
  }
  throw new Error(`${url} opened, but it should have been refused`);
}

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

describe('migrations', () => {
  it('creates the schema, records every migration once, and applies nothing again on reopen', async () => {
    const schema = await newTestSchema('mig');
    const first = await open(schemaUrl(schema));
    const rows = await adminQuery('SELECT version, name, applied_at FROM schema_migrations ORDER BY version', [], schema);
    expect(rows.map((r) => [r.version, r.name])).toEqual(MIGRATIONS.map((m) => [m.version, m.name]));
    expect(rows[0]).toMatchObject({ version: 1, name: 'initial' });
    await engineFor(first).submit({ request: 'kept across reopen' }, 'test');
    await first.close();
    const second = await open(schemaUrl(schema));
    expect(await adminQuery('SELECT version, name, applied_at FROM schema_migrations ORDER BY version', [], schema)).toEqual(rows);
    expect((await second.listTasks()).map((t) => t.request)).toEqual(['kept across reopen']);
    expect(second.location).toContain(`(schema ${schema})`);
    expect(second.location).not.toContain('schema=');
  });

  it('lets several processes open the same new schema at the same instant: all succeed, each migration is applied once', async () => {
    const schema = await newTestSchema('race');
    const dir = tempDir();
    const script = `
      const { openPostgresStore } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist/src/store/postgres.js')).href)});
      const { existsSync, writeFileSync } = await import('node:fs');
      const [url, dir, n] = process.argv.slice(1);
      writeFileSync(dir + '/ready-' + n, '');
      for (let i = 0; i < 4; i++) while (!existsSync(dir + '/ready-' + i)) await new Promise((r) => setTimeout(r, 1));
      const store = await openPostgresStore(url);
      await store.createSession({ id: 'child-' + n, pid: process.pid, host: 'test', at: Date.now() });
      await store.close();
      console.log('opened ' + n);
    `;
    const results = await Promise.all([0, 1, 2, 3].map((n) => runNode(script, [schemaUrl(schema), dir, String(n)])));
    results.forEach((r, n) => {
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out.trim()).toBe(`opened ${n}`);
    });
    expect((await adminQuery('SELECT version FROM schema_migrations ORDER BY version', [], schema)).map((r) => r.version)).toEqual(
      MIGRATIONS.map((m) => m.version),
    );
    const store = await open(schemaUrl(schema));
    expect((await store.listSessions()).map((s) => s.id).sort()).toEqual(['child-0', 'child-1', 'child-2', 'child-3']);
  });

  it('refuses a schema newer than this cairn, naming it, and leaves it as it was', async () => {
    const schema = await newTestSchema('newer');
    await (await open(schemaUrl(schema))).close();
    await adminQuery("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from_the_future', 1)", [], schema);
    const error = await openError(schemaUrl(schema));
    expect(error).toBeInstanceOf(StoreError);
    expect(error.message).toContain(`(schema ${schema}) has schema version 9999, newer than this cairn understands`);
    expect((await adminQuery('SELECT version FROM schema_migrations ORDER BY version', [], schema)).map((r) => r.version)).toEqual([
      ...MIGRATIONS.map((m) => m.version),
      9999,
    ]);
  });
});

describe('a server that cannot be used', () => {
  it('nothing listening: a StoreUnavailableError naming host:port and what to check, quickly', async () => {
    const started = Date.now();
    const error = await openError('postgres://postgres@127.0.0.1:1/test');
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(error.message).toContain('cannot reach PostgreSQL at 127.0.0.1:1 (database "test")');
    expect(error.message).toContain('ECONNREFUSED');
    expect(error.message).toContain('--database, CAIRN_DATABASE_URL or store.url');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('an unknown host, a missing database and a URL that is not PostgreSQL each say so', async () => {
    const unknown = await openError('postgres://postgres@no-such-host.invalid:5432/test');
    expect(unknown).toBeInstanceOf(StoreUnavailableError);
    expect(unknown.message).toContain('no-such-host.invalid:5432');
    const url = new URL(PG_URL);
    url.pathname = '/no_such_database_for_cairn';
    const missing = await openError(url.href);
    expect(missing).toBeInstanceOf(StoreError);
    expect(missing.message).toContain(`database "no_such_database_for_cairn" does not exist on PostgreSQL at ${url.hostname}:${url.port || 5432}`);
    await expect(open('mysql://root@127.0.0.1/test')).rejects.toBeInstanceOf(ConfigError);
    await expect(open(`${PG_URL}?schema=Bad-Name`)).rejects.toThrow(/lower-case PostgreSQL schema name/);
  });

  it('the password never appears in the location', async () => {
    const schema = await newTestSchema('pw');
    const url = new URL(schemaUrl(schema));
    url.password = 'hunter2';
    const store = await open(url.href);
    expect(store.location).not.toContain('hunter2');
  });
});

describe('schemas', () => {
  it('keeps two installations in one database apart, change notifications included', async () => {
    const [a, b] = [await open(schemaUrl(await newTestSchema('a'))), await open(schemaUrl(await newTestSchema('b')))];
    const watcherB = await open(schemaUrl(b.target.schema));
    const markerB = await watcherB.changeMarker();
    await engineFor(a).submit({ request: 'only in a' }, 'test');
    await engineFor(b).submit({ request: 'only in b' }, 'test');
    expect((await a.listTasks()).map((t) => t.request)).toEqual(['only in a']);
    expect((await b.listTasks()).map((t) => t.request)).toEqual(['only in b']);
    await waitFor(async () => (await watcherB.changeMarker()) !== markerB, { what: 'b to hear its own schema', timeoutMs: 2000 });
    const watcherA = await open(schemaUrl(a.target.schema));
    const markerA = await watcherA.changeMarker();
    for (let i = 0; i < 5; i++) await engineFor(b).submit({ request: `b ${i}` }, 'test');
    // Then one commit in a. A listener gets notifications in commit order (PostgreSQL sends a session's
    // pending ones together), so once a's is heard, any of b's that reached a's channel were counted first.
    await engineFor(a).submit({ request: 'a after b' }, 'test');
    const heard = await waitFor(async () => {
      const m = await watcherA.changeMarker();
      return m !== markerA && m;
    }, { what: "a to hear its own schema's commit", timeoutMs: 2000 });
    expect(heard).toBe(markerA + 1);
  });
});

describe('dispatch queries', () => {
  it('with 10,000 runs waiting for a slot, dispatch and a claim round read them in index order: no sort, no reading them all', async () => {
    const schema = await newTestSchema('backlog');
    const store = await open(schemaUrl(schema));
    const now = Date.now();
    await adminQuery(
      `INSERT INTO tasks (request, priority, priority_rank, tags, state, status, snapshot, version, run_stage, run_attempt, created_at, updated_at)
       SELECT 'waiting ' || n, 'medium', 1, '[]', 'implementing', 'in_progress', repeat('x', 600), 3, 'implement', 2, $1, $1
         FROM generate_series(1, 10000) AS n`,
      [now],
      schema,
    );
    await adminQuery('ANALYZE tasks', [], schema);
    const sent: { text: string; values: unknown[] }[] = [];
    const query = pg.Pool.prototype.query;
    pg.Pool.prototype.query = function (this: pg.Pool, text: unknown, values?: unknown) {
      if (typeof text === 'string') sent.push({ text, values: (values as unknown[]) ?? [] });
      return (query as (...args: unknown[]) => unknown).call(this, text, values);
    } as typeof query;
    try {
      expect(await store.findRunnable(now, 4)).toHaveLength(4);
      expect(await store.claimRuns([1, 2], 'sess', now, 60_000)).toHaveLength(2);
    } finally {
      pg.Pool.prototype.query = query;
    }
    const [runnable, claimRound] = sent.filter((q) => q.text.includes('lease_owner IS NULL'));
    expect(runnable.text).toContain('ORDER BY t.priority_rank');
    expect(claimRound.text).toContain('cairn_claim_run');
    /** The plan's nodes, without the correlated subquery that gathers each row's dependencies (per row, not the backlog). */
    const planOf = async (text: string, values: unknown[]) => {
      const [{ 'QUERY PLAN': plan }] = await adminQuery(`EXPLAIN (FORMAT JSON) ${text}`, values, schema);
      const shape: string[] = [];
      const walk = (node: { 'Node Type': string; 'Index Name'?: string; 'Relation Name'?: string; 'Parent Relationship'?: string; Plans?: unknown[] }) => {
        if (node['Parent Relationship'] === 'SubPlan') return;
        shape.push([node['Node Type'], node['Index Name'] ?? node['Relation Name']].filter(Boolean).join(' '));
        for (const child of node.Plans ?? []) walk(child as typeof node);
      };
      walk(plan[0].Plan);
      return shape;
    };
    const readsTheBacklog = (shape: string[]) => shape.filter((s) => s === 'Sort' || s.startsWith('Bitmap') || s === 'Seq Scan tasks');
    const dispatchRound = await planOf(runnable.text, runnable.values);
    expect(dispatchRound).toContain('Index Scan tasks_runnable');
    expect(readsTheBacklog(dispatchRound)).toEqual([]);
    // The round a stage result claims with yields to a better waiting priority ($6): that read is the one to check.
    const yielding = await planOf(claimRound.text, claimRound.values.map((v, i) => (i === 5 ? true : v)));
    expect(yielding).toContain('Index Scan tasks_runnable');
    expect(yielding.filter((s) => s.startsWith('Bitmap') || s === 'Seq Scan tasks')).toEqual([]);
  });
});

describe('cut connections', () => {
  async function openNamed(label: string) {
    const schema = await newTestSchema(label);
    const appName = `cairn_cut_${schema.slice(-8)}`;
    const store = await open(schemaUrl(schema, { application_name: appName }));
    return { store, schema, appName };
  }

  it('idle connections and the listener cut by pg_terminate_backend: the process lives on, reconnects, and hears changes again', async () => {
    const { store, schema, appName } = await openNamed('idle');
    const engine = engineFor(store);
    const task = await engine.submit({ request: 'before the cut' }, 'test');
    const marker = await store.changeMarker();
    const other = await open(schemaUrl(schema));
    const listeners = () => adminQuery<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE $2', [appName, 'LISTEN%']);
    const cutListener = (await listeners()).map((r) => r.pid);
    expect(await terminateBackends(appName)).toBeGreaterThanOrEqual(2); // a pool connection and the listener
    // The listener comes back on its own, on a new backend, after a backoff. Its connection and the pool's
    // closed together, so by then an unhandled 'error' from a cut idle pool client would have ended this process.
    await waitFor(async () => (await listeners()).some((r) => !cutListener.includes(r.pid)), {
      what: 'the listener to reconnect',
      timeoutMs: 5000,
    });
    expect((await store.getTask(task.id))?.request).toBe('before the cut');
    const { task: started } = await engine.start(task.id, 'test');
    expect(started.state).toBe('planning');
    // Then another process's commit moves the marker again.
    const afterReconnect = await store.changeMarker();
    expect(afterReconnect).not.toBe(marker);
    await engineFor(other).submit({ request: 'from another process' }, 'test');
    await waitFor(async () => (await store.changeMarker()) !== afterReconnect, { what: 'the marker to move after reconnecting', timeoutMs: 3000 });
  });

  it('a commit cut mid-statement is tried again on a new connection and applied exactly once', async () => {
    const { store, schema, appName } = await openNamed('mid');
    const engine = engineFor(store);
    const task = await engine.submit({ request: 'cut while committing' }, 'test');
    // Hold the task row from outside, so the store's commit waits on it; cut that waiting connection.
    const blocker = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
    blocker.on('error', () => undefined);
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE', [task.id]);
      const starting = engine.start(task.id, 'test');
      const waiting = () =>
        adminQuery("SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [appName]);
      const [victim] = await waitFor(async () => (await waiting()).length > 0 && waiting(), { what: 'the commit to wait on the row lock' });
      await adminQuery('SELECT pg_terminate_backend($1)', [victim.pid]);
      // The retry waits on the same lock; let it through.
      await waitFor(async () => (await waiting()).length > 0, { what: 'the retry to wait on the row lock' });
      await blocker.query('COMMIT');
      const { task: started } = await starting;
      expect(started).toMatchObject({ state: 'planning', version: 2 });
    } finally {
      await blocker.end();
    }
    expect((await store.getHistory(task.id)).map((h) => h.event.type)).toEqual(['SUBMIT', 'START']);
  });

  it('a statement whose first try committed before the cut is recognised on the retry, not applied twice', async () => {
    const { store, schema } = await openNamed('retry');
    const engine = engineFor(store);
    // What a first try leaves behind: the write committed, the reply lost. The retry sends the same write with p_is_retry.
    const created = await engine.submit({ request: 'sent twice' }, 'user:ann');
    const [submitted] = await adminQuery('SELECT event, actor, at FROM transitions WHERE task_id = $1 AND seq = 1', [created.id], schema);
    const again = await adminQuery(
      'SELECT cairn_create_task($1::jsonb, true) AS task',
      [
        JSON.stringify({
          request: 'sent twice', priority: 'medium', priority_rank: 1, tags: '[]', state: 'pending', snapshot: '{}',
          at: submitted.at, depends_on: [], submit_event: submitted.event, actor: submitted.actor, checkpoints: [],
        }),
      ],
      schema,
    );
    expect(Number(again[0].task.id)).toBe(created.id);
    expect(await store.listTasks()).toHaveLength(1);

    const { task } = await engine.start(created.id, 'test');
    const [start] = await adminQuery('SELECT event, actor, at FROM transitions WHERE task_id = $1 AND seq = 2', [created.id], schema);
    const replay = { task_id: created.id, expected_version: 1, from: 'pending', to: 'planning', status: 'in_progress', event_type: 'START',
      event: start.event, actor: start.actor, at: Number(start.at), snapshot: JSON.stringify(task.snapshot), checkpoints: [],
      run_stage: 'plan', run_attempt: 1, run_after: null, completion: null, notes: [] };
    const [asRetry] = await adminQuery('SELECT ok, seq FROM cairn_commit_transitions($1::jsonb, true)', [JSON.stringify([replay])], schema);
    expect(asRetry).toEqual({ ok: true, seq: 2 });
    const [asNew] = await adminQuery('SELECT ok, reason FROM cairn_commit_transitions($1::jsonb, false)', [JSON.stringify([replay])], schema);
    expect(asNew).toEqual({ ok: false, reason: 'conflict' });
    // A different write at that version is still a conflict on retry: only our own is recognised.
    const [other] = await adminQuery('SELECT ok, reason FROM cairn_commit_transitions($1::jsonb, true)', [
      JSON.stringify([{ ...replay, actor: 'someone else' }]),
    ], schema);
    expect(other).toEqual({ ok: false, reason: 'conflict' });
    expect(await store.getHistory(created.id)).toHaveLength(2);

    const now = Date.now();
    const claim = await store.claimRun(created.id, 'sess-a', now, 60_000);
    const [reclaimed] = await adminQuery('SELECT run FROM cairn_claim_run($1, $2, $3, $4, true)', [created.id, 'sess-a', now, 60_000], schema);
    expect(reclaimed.run.run_id).toBe(claim!.run.runId);
    expect(await adminQuery('SELECT run FROM cairn_claim_run($1, $2, $3, $4, false)', [created.id, 'sess-a', now, 60_000], schema)).toEqual([]);
    expect(await adminQuery('SELECT run FROM cairn_claim_run($1, $2, $3, $4, true)', [created.id, 'sess-b', now, 60_000], schema)).toEqual([]);
    expect(await store.getStageRuns(created.id)).toHaveLength(1);
    expect((await store.getTask(created.id))?.lease?.token).toBe(1);
  });
});
