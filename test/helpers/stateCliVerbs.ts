/**
 * The `cairn state …` verb suite, run through the real binary on a backend chosen only by config.
 * Split over three test files (stateCli, stateCliRedis, stateCliPostgres) so each stays short on a
 * loaded machine. PostgreSQL is chosen by the store alone: with no `state.backend`, the state lives in
 * the store's schema.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfigFile } from '../../src/config.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { Workspace } from './cairnProcess.js';
import { adminQuery, dropTestSchemas, newTestSchema, schemaUrl } from './postgres.js';
import { deleteRedisPrefixes, inspectRedis, REDIS_URL, uniqueRedisPrefix } from './stateRedis.js';
import { tempDir } from './tmp.js';

const prefixes: string[] = [];
afterAll(() => deleteRedisPrefixes(prefixes));
afterAll(() => dropTestSchemas());

const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/;

type Kind = 'sqlite' | 'postgres' | 'json' | 'redis';

async function stateConfig(kind: Kind): Promise<{ config: ConfigFile; prefix?: string; schema?: string }> {
  if (kind === 'postgres') {
    const schema = await newTestSchema('cli');
    return { config: { store: { kind: 'postgres', url: schemaUrl(schema) } }, schema };
  }
  if (kind !== 'redis') return { config: { state: { backend: kind } } };
  const prefix = uniqueRedisPrefix('cli');
  prefixes.push(prefix);
  return { config: { state: { backend: 'redis', url: REDIS_URL, prefix } }, prefix };
}

function ok(ws: Workspace, args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = ws.cli(args, env);
  expect(r.code, `cairn ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** Registers the suite for each backend kind given. */
export function describeStateCliVerbs(kinds: readonly Kind[]): void {
  describe.each(kinds)('cairn state on the %s backend (chosen in config)', (kind) => {
    it('get, set, del, list, checkpoint, restore and checkpoints', async () => {
      const ws = new Workspace(tempDir());
      const { config, prefix, schema } = await stateConfig(kind);
      ws.writeConfig(config);

      expect(ok(ws, ['state', 'set', 'phase', 'building', '--ns', 'wf'])).toBe('wf: phase = "building"\n');
      const count = JSON.parse(ok(ws, ['state', 'set', 'count', '3', '--ns', 'wf', '--json']));
      expect(count).toEqual({ ns: 'wf', key: 'count', value: 3, updated_at: expect.stringMatching(STAMP) });
      ok(ws, ['state', 'set', 'obj', '{"a":[1,true,null]}', '--ns', 'wf']);

      expect(JSON.parse(ok(ws, ['state', 'get', 'phase', '--ns', 'wf', '--json']))).toEqual({ ns: 'wf', key: 'phase', value: 'building', updated_at: expect.stringMatching(STAMP) });
      // CAIRN_STATE_NS stands in for --ns, as in a stage program.
      expect(ok(ws, ['state', 'get', 'obj'], { CAIRN_STATE_NS: 'wf' })).toBe('{"a":[1,true,null]}\n');

      const listed = JSON.parse(ok(ws, ['state', 'list', '--ns', 'wf', '--json']));
      expect(listed).toEqual([
        { ns: 'wf', key: 'count', value: 3, updated_at: count.updated_at },
        { ns: 'wf', key: 'obj', value: { a: [1, true, null] }, updated_at: expect.stringMatching(STAMP) },
        { ns: 'wf', key: 'phase', value: 'building', updated_at: expect.stringMatching(STAMP) },
      ]);
      expect(JSON.parse(ok(ws, ['state', 'checkpoint', 'before', '--ns', 'wf', '--json']))).toMatchObject({ ns: 'wf', name: 'before', keys: 3 });

      expect(ok(ws, ['state', 'del', 'phase', '--ns', 'wf'])).toBe('wf: deleted phase\n');
      expect(JSON.parse(ok(ws, ['state', 'del', 'phase', '--ns', 'wf', '--json']))).toEqual({ ns: 'wf', key: 'phase', deleted: false });

      expect(ok(ws, ['state', 'restore', 'before', '--ns', 'wf'])).toMatch(/^wf: restored checkpoint before from .* \(3 keys\)\n$/);
      expect(JSON.parse(ok(ws, ['state', 'list', '--ns', 'wf', '--json']))).toEqual(listed);
      const cps = JSON.parse(ok(ws, ['state', 'checkpoints', '--ns', 'wf', '--json']));
      expect(cps).toEqual([{ ns: 'wf', name: 'before', at: expect.stringMatching(STAMP), keys: 3 }]);

      // The state is where the config says, and nowhere else.
      const jsonFile = path.join(ws.dataDir, 'kv', 'wf', 'state.json');
      if (kind === 'json') {
        expect(Object.keys(JSON.parse(readFileSync(jsonFile, 'utf8'))).sort()).toEqual(['count', 'obj', 'phase']);
      } else {
        expect(existsSync(jsonFile)).toBe(false);
      }
      const store = openSqliteStore(ws.dbFile);
      try {
        const rows = store.db.prepare("SELECT count(*) FROM kv_entries WHERE ns = 'wf'").pluck().get();
        expect(rows).toBe(kind === 'sqlite' ? 3 : 0);
      } finally {
        await store.close();
      }
      if (schema) {
        expect(await adminQuery("SELECT count(*)::int AS n FROM kv_entries WHERE ns = 'wf'", [], schema)).toEqual([{ n: 3 }]);
      }
      if (prefix) {
        const redis = inspectRedis();
        try {
          expect(await redis.hlen(`${prefix}state:ns:wf:keys`)).toBe(3);
        } finally {
          await redis.quit();
        }
      }
    });
  });
}
