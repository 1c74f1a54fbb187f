/**
 * What each backend promises beyond the shared contract: Redis keys under the prefix with no TTL, and
 * a fast error naming the URL when Redis is down or goes away; SQLite state in the tasks' database on
 * the store's own connection; and how the config and `--from`/`--to` specs choose a backend.
 */
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { ConfigError, StateBackendError, UsageError } from '../src/errors.js';
import { openStateBackend, openStateSpec, parseStateSpec, stateSpecFromConfig } from '../src/state/openStateBackend.js';
import { RedisStateBackend } from '../src/state/redisState.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { deleteRedisPrefixes, inspectRedis, keysUnder, REDIS_URL, uniqueRedisPrefix } from './helpers/stateRedis.js';
import { tempDir } from './helpers/tmp.js';

const prefixes: string[] = [];
afterAll(() => deleteRedisPrefixes(prefixes));
function prefix(): string {
  const p = uniqueRedisPrefix('storage');
  prefixes.push(p);
  return p;
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP proxy to the real Redis that the test can pull the plug on. */
async function redisProxy(): Promise<{ url: string; cut: () => Promise<void> }> {
  const target = new URL(REDIS_URL);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}/0`,
    cut: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

describe('Redis state backend', () => {
  it('keeps every key under the prefix, with no TTL, and checkpoints as whole copies', async () => {
    const p = prefix();
    const s = await RedisStateBackend.connect(REDIS_URL, p);
    const redis = inspectRedis();
    try {
      await s.set('task-7', 'phase', 'planning');
      await s.checkpoint('task-7', 'after_planning');
      await s.set('task-7', 'phase', 'building');
      expect(await keysUnder(redis, p)).toEqual(
        [
          `${p}state:namespaces`,
          `${p}state:ns:task-7:checkpoint:after_planning`,
          `${p}state:ns:task-7:checkpoints`,
          `${p}state:ns:task-7:keys`,
        ].sort(),
      );
      for (const key of await keysUnder(redis, p)) expect(await redis.ttl(key), key).toBe(-1);
      // The checkpoint is its own copy of the hash, not a reference to the live one.
      const copy = await redis.hget(`${p}state:ns:task-7:checkpoint:after_planning`, 'phase');
      expect(JSON.parse(copy!).value).toBe('planning');
      expect(JSON.parse((await redis.hget(`${p}state:ns:task-7:keys`, 'phase'))!)).toEqual({
        value: 'building',
        timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/),
      });
    } finally {
      await s.close();
      await redis.quit();
    }
  });

  it('when Redis is down, opening fails within seconds with an error naming the URL (password hidden)', async () => {
    const port = await closedPort();
    const started = Date.now();
    const error = await RedisStateBackend.connect(`redis://cairn:s3cret@127.0.0.1:${port}/0`, prefix()).catch((e) => e);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error).toBeInstanceOf(StateBackendError);
    expect(error.message).toContain(`redis://cairn:***@127.0.0.1:${port}/0`);
    expect(error.message).toMatch(/ECONNREFUSED/);
    expect(error.message).toMatch(/start Redis there, or point state.url at a running one/);
    expect(error.message).not.toContain('s3cret');
  });

  it('when Redis goes away after connecting, calls fail at once with the URL instead of hanging', async () => {
    const proxy = await redisProxy();
    const s = await RedisStateBackend.connect(proxy.url, prefix());
    try {
      await s.set('ns', 'k', 1);
      await proxy.cut();
      const started = Date.now();
      const error = await s.get('ns', 'k').catch((e) => e);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(error).toBeInstanceOf(StateBackendError);
      expect(error.message).toContain(proxy.url);
      expect(error.message).toMatch(/check that Redis is running and reachable/);
    } finally {
      await s.close();
    }
  });
});

describe('SQLite state backend', () => {
  it('lives in the tasks\' database, on the store\'s own connection', async () => {
    const dataDir = tempDir();
    const config = defaultConfig({ dataDir });
    const store = openSqliteStore(path.join(dataDir, 'cairn.db'));
    try {
      const versions = store.db.prepare('SELECT version FROM schema_migrations').pluck().all();
      expect(versions).toContain(3);
      const state = await openStateBackend(config, store);
      expect(state.kind).toBe('sqlite');
      await state.set('task-1', 'phase', { step: 2 });
      // Same connection: the row is visible through the store's handle without a new read transaction.
      expect(store.db.prepare('SELECT ns, key, value FROM kv_entries').all()).toEqual([{ ns: 'task-1', key: 'phase', value: '{"step":2}' }]);
      await state.close();
      // Closing the state left the store open.
      expect(store.db.open).toBe(true);
      expect(await store.listTasks()).toEqual([]);
    } finally {
      await store.close();
    }
    // Opened without a store, it opens the same file itself.
    const alone = await openStateBackend(config);
    try {
      expect((await alone.get('task-1', 'phase'))?.value).toEqual({ step: 2 });
    } finally {
      await alone.close();
    }
  });
});

describe('choosing a backend', () => {
  it('from the config: the store\'s kind by default, json in <dataDir>/kv or state.dir, redis with url and prefix', () => {
    const base = tempDir();
    const dataDir = path.join(base, 'data');
    expect(stateSpecFromConfig(defaultConfig({ dataDir }, base))).toEqual({ kind: 'sqlite', path: path.join(dataDir, 'cairn.db') });
    expect(stateSpecFromConfig(defaultConfig({ dataDir, state: { backend: 'json' } }, base))).toEqual({ kind: 'json', dir: path.join(dataDir, 'kv') });
    expect(stateSpecFromConfig(defaultConfig({ dataDir, state: { backend: 'json', dir: 'legacy/state' } }, base))).toEqual({
      kind: 'json',
      dir: path.join(base, 'legacy', 'state'),
    });
    expect(stateSpecFromConfig(defaultConfig({ state: { backend: 'redis' } }, base))).toEqual({ kind: 'redis', url: 'redis://127.0.0.1:6379', prefix: 'cairn:' });
    expect(stateSpecFromConfig(defaultConfig({ state: { backend: 'redis', url: 'redis://h:7/2', prefix: 'p:' } }, base))).toEqual({
      kind: 'redis',
      url: 'redis://h:7/2',
      prefix: 'p:',
    });
    // A PostgreSQL store keeps the state in its own schema unless told otherwise.
    const postgres = defaultConfig({ store: { kind: 'postgres', url: 'postgres://x/y', schema: 'team' } }, base);
    expect(stateSpecFromConfig(postgres)).toEqual({ kind: 'postgres', url: 'postgres://x/y', schema: 'team' });
    expect(stateSpecFromConfig(defaultConfig({ store: { kind: 'postgres', url: 'postgres://x/y' }, state: { backend: 'postgres' } }, base))).toEqual({
      kind: 'postgres',
      url: 'postgres://x/y',
    });
    expect(stateSpecFromConfig(defaultConfig({ state: { backend: 'postgres', url: 'postgres://h/kv?schema=s' } }, base))).toEqual({
      kind: 'postgres',
      url: 'postgres://h/kv?schema=s',
    });
    const sqliteOnPostgres = defaultConfig({ store: { kind: 'postgres', url: 'postgres://x/y' }, state: { backend: 'sqlite' } }, base);
    expect(() => stateSpecFromConfig(sqliteOnPostgres)).toThrow(ConfigError);
    expect(() => stateSpecFromConfig(sqliteOnPostgres)).toThrow(/remove state.backend .* or set it to "postgres", "redis" or "json"/);
    const postgresWithoutDatabase = defaultConfig({ dataDir, state: { backend: 'postgres' } }, base);
    expect(() => stateSpecFromConfig(postgresWithoutDatabase)).toThrow(/state.backend "postgres" needs a database, but the store is SQLite; set state.url/);
  });

  it('from --from/--to specs', () => {
    const cwd = tempDir();
    const config = defaultConfig({ dataDir: path.join(cwd, 'data'), state: { prefix: 'cfg:' } }, cwd);
    expect(parseStateSpec('sqlite', config, cwd)).toEqual({ kind: 'sqlite', path: path.join(cwd, 'data', 'cairn.db') });
    expect(parseStateSpec('sqlite:other.db', config, cwd)).toEqual({ kind: 'sqlite', path: path.join(cwd, 'other.db') });
    expect(parseStateSpec('json', config, cwd)).toEqual({ kind: 'json', dir: path.join(cwd, 'data', 'kv') });
    expect(parseStateSpec('json:.claude/state', config, cwd)).toEqual({ kind: 'json', dir: path.join(cwd, '.claude', 'state') });
    expect(parseStateSpec('redis', config, cwd)).toEqual({ kind: 'redis', url: 'redis://127.0.0.1:6379', prefix: 'cfg:' });
    expect(parseStateSpec('redis://10.0.0.5:6380/3', config, cwd)).toEqual({ kind: 'redis', url: 'redis://10.0.0.5:6380/3', prefix: 'cfg:' });
    expect(parseStateSpec('redis://10.0.0.5:6380/3?prefix=other:', config, cwd)).toEqual({ kind: 'redis', url: 'redis://10.0.0.5:6380/3', prefix: 'other:' });
    expect(parseStateSpec('postgres://10.0.0.5/db?schema=kv', config, cwd)).toEqual({ kind: 'postgres', url: 'postgres://10.0.0.5/db?schema=kv' });
    expect(() => parseStateSpec('postgres', config, cwd)).toThrow(/state.backend "postgres" needs a database/);
    const onPostgres = defaultConfig({ store: { kind: 'postgres', url: 'postgres://x/y', schema: 'team' } }, cwd);
    expect(parseStateSpec('postgres', onPostgres, cwd)).toEqual({ kind: 'postgres', url: 'postgres://x/y', schema: 'team' });
    for (const bad of ['postgres:x', 'json:', 'mongo', '', 'redis:6379']) expect(() => parseStateSpec(bad, config, cwd)).toThrow(UsageError);
  });

  it('opening a JSON spec touches nothing until a write', async () => {
    const dir = path.join(tempDir(), 'not-yet');
    const s = await openStateSpec({ kind: 'json', dir });
    expect(await s.namespaces()).toEqual([]);
    expect(await s.list('ns')).toEqual([]);
    const { existsSync } = await import('node:fs');
    expect(existsSync(dir)).toBe(false);
    await s.set('ns', 'k', 1);
    expect(existsSync(path.join(dir, 'ns', 'state.json'))).toBe(true);
  });
});
