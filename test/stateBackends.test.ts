/**
 * One contract suite for the key-value state, run against every backend: SQLite (a real database
 * file), PostgreSQL (the real server on 127.0.0.1:5432, a schema of its own per test, dropped
 * afterwards), JSON (a real directory) and Redis (the real server on 127.0.0.1:6379, under a key prefix
 * of its own that is deleted afterwards).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { CheckpointNotFoundError, UsageError } from '../src/errors.js';
import { openStateSpec, type StateSpec } from '../src/state/openStateBackend.js';
import type { NamespaceDump, StateBackend } from '../src/state/stateBackend.js';
import { dropTestSchemas, newTestSchema, schemaUrl } from './helpers/postgres.js';
import { deleteRedisPrefixes, REDIS_URL, uniqueRedisPrefix } from './helpers/stateRedis.js';
import { tempDir } from './helpers/tmp.js';

const redisPrefixes: string[] = [];
afterAll(() => deleteRedisPrefixes(redisPrefixes));
afterAll(() => dropTestSchemas());

/** A place for one backend: opening it twice reaches the same state. */
async function newPlace(kind: 'sqlite' | 'postgres' | 'json' | 'redis'): Promise<StateSpec> {
  if (kind === 'sqlite') return { kind, path: path.join(tempDir(), 'cairn.db') };
  if (kind === 'postgres') return { kind, url: schemaUrl(await newTestSchema('kv')) };
  if (kind === 'json') return { kind, dir: path.join(tempDir(), 'kv') };
  const prefix = uniqueRedisPrefix('contract');
  redisPrefixes.push(prefix);
  return { kind, url: REDIS_URL, prefix };
}

/** A clock the test moves: every write is stamped with a distinct, known time. */
function testClock(startMs = Date.UTC(2026, 0, 2, 3, 4, 5, 678)) {
  let ms = startMs;
  return { now: () => ms, advance: (byMs = 1000) => (ms += byMs), iso: () => new Date(ms).toISOString().replace('Z', '+00:00') };
}

const open: StateBackend[] = [];
afterEach(async () => {
  for (const b of open.splice(0)) await b.close();
});

async function openPlace(spec: StateSpec, now?: () => number): Promise<StateBackend> {
  const backend = await openStateSpec(spec, { now });
  open.push(backend);
  return backend;
}

describe.each(['sqlite', 'postgres', 'json', 'redis'] as const)('key-value state on %s', (kind) => {
  it('get, set, del and list keys with JSON values and timestamps', async () => {
    const clock = testClock();
    const s = await openPlace(await newPlace(kind), clock.now);
    expect(await s.get('ns1', 'missing')).toBeNull();

    const values = {
      string: 'building',
      number: 42.5,
      negative: -7,
      boolean: false,
      null: null,
      array: ['scout', 'plan', 3],
      object: { nested: { deep: [1, { x: 'y' }] }, empty: {} },
      unicode: 'ünïcødé ✓ 日本',
    };
    const stamps: Record<string, string> = {};
    for (const [key, value] of Object.entries(values)) {
      clock.advance();
      const entry = await s.set('ns1', key, value);
      expect(entry).toEqual({ key, value, updatedAt: clock.iso() });
      stamps[key] = clock.iso();
    }
    for (const [key, value] of Object.entries(values)) {
      expect(await s.get('ns1', key)).toEqual({ key, value, updatedAt: stamps[key] });
    }
    // Keys are any non-empty string, including ones that mean something elsewhere.
    for (const key of ['with space', 'a:b:c', 'a/b', '__proto__', 'constructor', '.hidden']) {
      await s.set('ns1', key, key.length);
      expect((await s.get('ns1', key))?.value).toBe(key.length);
    }

    const listed = await s.list('ns1');
    expect(listed.map((e) => e.key)).toEqual([...Object.keys(values), 'with space', 'a:b:c', 'a/b', '__proto__', 'constructor', '.hidden'].sort());
    expect(listed.find((e) => e.key === 'object')).toEqual({ key: 'object', value: values.object, updatedAt: stamps.object });

    // Overwriting changes the value and the time.
    clock.advance(60_000);
    await s.set('ns1', 'string', 'testing');
    expect(await s.get('ns1', 'string')).toEqual({ key: 'string', value: 'testing', updatedAt: clock.iso() });

    expect(await s.del('ns1', 'string')).toBe(true);
    expect(await s.del('ns1', 'string')).toBe(false);
    expect(await s.get('ns1', 'string')).toBeNull();
    expect((await s.list('ns1')).map((e) => e.key)).not.toContain('string');

    // Namespaces do not see each other.
    await s.set('ns2', 'number', 1);
    expect((await s.get('ns1', 'number'))?.value).toBe(42.5);
    expect((await s.list('ns2')).map((e) => e.key)).toEqual(['number']);
    expect(await s.list('empty-ns')).toEqual([]);
  });

  it('stores what JSON holds: a Date becomes its ISO string; undefined and bad names are refused', async () => {
    const s = await openPlace(await newPlace(kind));
    const when = new Date(Date.UTC(2025, 4, 6));
    const entry = await s.set('ns', 'when', when as unknown as string);
    expect(entry.value).toBe('2025-05-06T00:00:00.000Z');
    expect((await s.get('ns', 'when'))?.value).toBe('2025-05-06T00:00:00.000Z');
    await expect(s.set('ns', 'u', undefined as unknown as null)).rejects.toThrow(UsageError);
    await expect(s.set('ns', '', 1)).rejects.toThrow(/cannot be empty/);
    for (const bad of ['../escape', 'a/b', 'a:b', '.hidden', '', 'x'.repeat(201)]) {
      await expect(s.set(bad, 'k', 1)).rejects.toThrow(UsageError);
    }
    await expect(s.checkpoint('ns', '../x')).rejects.toThrow(/not a valid checkpoint name/);
  });

  it('checkpoint saves a whole copy; restore brings the namespace back exactly', async () => {
    const clock = testClock();
    const s = await openPlace(await newPlace(kind), clock.now);
    await s.set('wf', 'phase', 'planning');
    clock.advance();
    await s.set('wf', 'done', ['scout']);
    const before = await s.list('wf');

    clock.advance();
    const cp = await s.checkpoint('wf', 'after_planning');
    expect(cp).toEqual({ name: 'after_planning', at: clock.iso(), keys: 2 });

    // Change everything after the checkpoint: the copy must not follow.
    clock.advance();
    await s.set('wf', 'phase', 'building');
    await s.del('wf', 'done');
    await s.set('wf', 'added-later', true);
    expect((await s.list('wf')).map((e) => e.key)).toEqual(['added-later', 'phase']);

    clock.advance();
    expect(await s.restore('wf', 'after_planning')).toEqual({ name: 'after_planning', at: cp.at, keys: 2 });
    expect(await s.list('wf')).toEqual(before);

    // A second checkpoint, and the first taken again under the same name, later.
    clock.advance();
    await s.set('wf', 'phase', 'review');
    const second = await s.checkpoint('wf', 'before_review');
    clock.advance();
    await s.set('wf', 'extra', 1);
    const retaken = await s.checkpoint('wf', 'after_planning');
    expect(retaken.keys).toBe(3);
    expect(await s.checkpoints('wf')).toEqual([
      { name: 'before_review', at: second.at, keys: 2 },
      { name: 'after_planning', at: retaken.at, keys: 3 },
    ]);
    await s.restore('wf', 'before_review');
    expect((await s.list('wf')).map((e) => [e.key, e.value])).toEqual([
      ['done', ['scout']],
      ['phase', 'review'],
    ]);

    await expect(s.restore('wf', 'never_taken')).rejects.toThrow(CheckpointNotFoundError);
    await expect(s.restore('wf', 'never_taken')).rejects.toThrow(/namespace wf has no checkpoint named never_taken/);
    expect(await s.checkpoints('other')).toEqual([]);
  });

  it('a checkpoint of an empty namespace restores to empty', async () => {
    const s = await openPlace(await newPlace(kind));
    expect(await s.checkpoint('blank', 'start')).toMatchObject({ name: 'start', keys: 0 });
    await s.set('blank', 'a', 1);
    await s.set('blank', 'b', 2);
    expect(await s.restore('blank', 'start')).toMatchObject({ keys: 0 });
    expect(await s.list('blank')).toEqual([]);
    expect(await s.namespaces()).toEqual(['blank']); // it still has a checkpoint
  });

  it('namespaces lists those holding keys or checkpoints; state survives closing and reopening', async () => {
    const place = await newPlace(kind);
    const s = await openPlace(place);
    expect(await s.namespaces()).toEqual([]);
    await s.set('b-ns', 'k', 1);
    await s.set('a-ns', 'k', { v: 2 });
    await s.set('gone', 'k', 3);
    await s.del('gone', 'k');
    await s.checkpoint('a-ns', 'cp');
    expect(await s.namespaces()).toEqual(['a-ns', 'b-ns']);
    const dump = await s.exportNamespace('a-ns');
    await s.close();
    open.splice(open.indexOf(s), 1);

    const again = await openPlace(place);
    expect(await again.namespaces()).toEqual(['a-ns', 'b-ns']);
    expect(await again.exportNamespace('a-ns')).toEqual(dump);
  });

  it('exportNamespace and importNamespace carry keys, timestamps and checkpoints, replacing what was there', async () => {
    const s = await openPlace(await newPlace(kind));
    const dump: NamespaceDump = {
      ns: 'imported',
      entries: [
        { key: 'current_phase', value: 'building', updatedAt: '2026-01-01T10:00:00' },
        { key: 'meta', value: { user: 'dev' }, updatedAt: '2026-01-01T10:06:00.000+00:00' },
      ],
      checkpoints: [
        { name: 'after_planning', at: '2026-01-01T09:00:00.000+00:00', entries: [{ key: 'current_phase', value: 'planning', updatedAt: '2026-01-01T09:00:00' }] },
        { name: 'empty', at: '2026-01-01T09:30:00.000+00:00', entries: [] },
      ],
    };
    await s.set('imported', 'stale-key', 'to be replaced');
    await s.checkpoint('imported', 'stale-checkpoint');
    await s.importNamespace(dump);
    expect(await s.exportNamespace('imported')).toEqual(dump);
    expect((await s.checkpoints('imported')).map((c) => c.name)).toEqual(['after_planning', 'empty']);
    await s.restore('imported', 'after_planning');
    expect(await s.list('imported')).toEqual(dump.checkpoints[0].entries);
  });
});
