/**
 * `cairn state migrate` through the real binary: json → sqlite → redis → json loses nothing (values,
 * key timestamps, checkpoints and their times), says what it moved, and refuses to overwrite a
 * target namespace unless told to.
 */
import { chmodSync, cpSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openStateSpec, type StateSpec } from '../src/state/openStateBackend.js';
import type { NamespaceDump } from '../src/state/stateBackend.js';
import { JsonStateBackend } from '../src/state/jsonState.js';
import { Workspace } from './helpers/cairnProcess.js';
import { dropTestSchemas, newTestSchema, schemaUrl } from './helpers/postgres.js';
import { deleteRedisPrefixes, REDIS_URL, uniqueRedisPrefix } from './helpers/stateRedis.js';
import { tempDir } from './helpers/tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// The repo's copy of ../shared/fixtures/legacy, so a clone alone runs the tests.
const LEGACY = path.join(root, 'test', 'fixtures', 'legacy', 'json-backend', '.claude', 'state');

const prefixes: string[] = [];
afterAll(() => deleteRedisPrefixes(prefixes));
afterAll(() => dropTestSchemas());

async function dumpAll(spec: StateSpec): Promise<NamespaceDump[]> {
  const backend = await openStateSpec(spec);
  try {
    const dumps: NamespaceDump[] = [];
    for (const ns of await backend.namespaces()) dumps.push(await backend.exportNamespace(ns));
    return dumps;
  } finally {
    await backend.close();
  }
}

/** The legacy fixture plus namespaces with every kind of value, several checkpoints, and one with only a checkpoint. */
async function buildSource(dir: string): Promise<void> {
  cpSync(LEGACY, dir, { recursive: true });
  const walk = (p: string) => {
    chmodSync(p, statSync(p).isDirectory() ? 0o755 : 0o644);
    if (statSync(p).isDirectory()) for (const f of readdirSync(p)) walk(path.join(p, f));
  };
  walk(dir);
  let ms = Date.UTC(2026, 2, 4, 5, 6, 7, 890);
  const s = new JsonStateBackend(dir, () => (ms += 1234));
  await s.set('task-9', 'plan', { steps: ['a', 'b'], estimate: 2.5, done: false, owner: null });
  await s.set('task-9', 'note', 'ünïcødé ✓ "quoted" \\ back');
  await s.set('task-9', 'a:colon key', [1, [2, [3]]]);
  await s.checkpoint('task-9', 'first');
  await s.set('task-9', 'note', 'changed');
  await s.checkpoint('task-9', 'second');
  await s.set('task-9', 'after', true);
  await s.checkpoint('only-checkpoint', 'empty');
}

describe('cairn state migrate', () => {
  it('json → sqlite → redis → json is lossless and says what it moved', async () => {
    const ws = new Workspace(tempDir());
    const prefix = uniqueRedisPrefix('migrate');
    prefixes.push(prefix);
    ws.writeConfig({ state: { prefix } });
    const sourceDir = path.join(ws.dir, 'legacy');
    await buildSource(sourceDir);
    const original = await dumpAll({ kind: 'json', dir: sourceDir });
    expect(original.map((d) => [d.ns, d.entries.length, d.checkpoints.length])).toEqual([
      ['only-checkpoint', 0, 1],
      ['task-9', 4, 2],
      ['workflow-123', 3, 1],
    ]);
    const stateFileBefore = readFileSync(path.join(sourceDir, 'workflow-123', 'state.json'), 'utf8');

    const toSqlite = ws.cli(['state', 'migrate', '--from', 'json:legacy', '--to', 'sqlite']);
    expect(toSqlite.code, toSqlite.stderr).toBe(0);
    expect(toSqlite.stdout).toBe(
      [
        `moved 3 namespaces (7 keys, 4 checkpoints) from json:${sourceDir} to sqlite:${ws.dbFile}; the source is left as it was`,
        '  only-checkpoint: 0 keys, 1 checkpoint',
        '  task-9: 4 keys, 2 checkpoints',
        '  workflow-123: 3 keys, 1 checkpoint',
        '',
      ].join('\n'),
    );
    expect(await dumpAll({ kind: 'sqlite', path: ws.dbFile })).toEqual(original);

    const toRedis = ws.cli(['state', 'migrate', '--from', 'sqlite', '--to', 'redis', '--json']);
    expect(toRedis.code, toRedis.stderr).toBe(0);
    expect(JSON.parse(toRedis.stdout)).toMatchObject({
      from: `sqlite:${ws.dbFile}`,
      to: `redis://127.0.0.1:6379 (prefix ${prefix})`,
      keys: 7,
      checkpoints: 4,
      replaced: [],
    });
    expect(await dumpAll({ kind: 'redis', url: REDIS_URL, prefix })).toEqual(original);

    const back = ws.cli(['state', 'migrate', '--from', `${REDIS_URL}?prefix=${prefix}`, '--to', 'json:roundtrip']);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toMatch(/^moved 3 namespaces \(7 keys, 4 checkpoints\)/);
    expect(await dumpAll({ kind: 'json', dir: path.join(ws.dir, 'roundtrip') })).toEqual(original);
    // Byte for byte the legacy layout again, legacy timestamps included.
    expect(JSON.parse(readFileSync(path.join(ws.dir, 'roundtrip', 'workflow-123', 'state.json'), 'utf8'))).toEqual(JSON.parse(stateFileBefore));
    expect(readFileSync(path.join(sourceDir, 'workflow-123', 'state.json'), 'utf8')).toBe(stateFileBefore);
  });

  it('json → postgres://…?schema=S → sqlite is lossless', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const sourceDir = path.join(ws.dir, 'legacy');
    await buildSource(sourceDir);
    const original = await dumpAll({ kind: 'json', dir: sourceDir });
    const schema = await newTestSchema('kvmig');
    const url = schemaUrl(schema);

    const toPostgres = ws.cli(['state', 'migrate', '--from', 'json:legacy', '--to', url, '--json']);
    expect(toPostgres.code, toPostgres.stderr).toBe(0);
    const report = JSON.parse(toPostgres.stdout);
    expect(report).toMatchObject({ keys: 7, checkpoints: 4 });
    expect(report.to).toMatch(new RegExp(`^postgres://[^?]*/test \\(schema ${schema}\\)$`));
    expect(await dumpAll({ kind: 'postgres', url })).toEqual(original);

    const toSqlite = ws.cli(['state', 'migrate', '--from', url, '--to', 'sqlite']);
    expect(toSqlite.code, toSqlite.stderr).toBe(0);
    expect(await dumpAll({ kind: 'sqlite', path: ws.dbFile })).toEqual(original);
  });

  it('refuses to overwrite namespaces the target holds unless --replace', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const sourceDir = path.join(ws.dir, 'legacy');
    await buildSource(sourceDir);
    expect(ws.cli(['state', 'set', 'mine', '1', '--ns', 'task-9']).code).toBe(0);

    const refused = ws.cli(['state', 'migrate', '--from', 'json:legacy', '--to', 'sqlite']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already holds namespace task-9; nothing was copied\. Pass --replace/);
    expect(JSON.parse(ws.cli(['state', 'list', '--ns', 'task-9', '--json']).stdout).map((e: any) => e.key)).toEqual(['mine']);

    const replaced = ws.cli(['state', 'migrate', '--from', 'json:legacy', '--to', 'sqlite', '--replace']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stdout).toContain(`replaced what sqlite:${ws.dbFile} held in: task-9`);
    expect(await dumpAll({ kind: 'sqlite', path: ws.dbFile })).toEqual(await dumpAll({ kind: 'json', dir: sourceDir }));
  });
});
