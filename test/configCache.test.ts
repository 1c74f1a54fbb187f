/**
 * The config validation cache: a read verb reuses a config validated before, but a changed config is
 * validated again (errors are never served from the cache), and the cache is private to its owner.
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir } from './helpers/tmp.js';

describe('config validation cache', () => {
  it('reuses a validated config, revalidates a changed one, and keeps its files private', async () => {
    const ws = new Workspace(tempDir());
    const cacheHome = tempDir('cairn-cache-');
    const env = { XDG_CACHE_HOME: cacheHome };
    ws.writeConfig({ concurrency: 3 });
    ws.createDataDir(); // a read verb refuses a data directory that does not exist
    expect(ws.cli(['list', '--json'], env).code).toBe(0);
    const dir = path.join(cacheHome, 'cairn', 'config');
    const entries = readdirSync(dir);
    expect(entries).toHaveLength(1);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, entries[0])).mode & 0o777).toBe(0o600);

    // The cached config is the validated one: same answer from the cache as from validation.
    // The built module (as the CLI runs it); a computed specifier keeps tsc from type-checking dist/ as input.
    const builtLoadConfig = new URL('../dist/src/loadConfig.js', import.meta.url).href;
    const { loadConfig } = (await import(builtLoadConfig)) as typeof import('../src/loadConfig.js');
    const fresh = await loadConfig({ cwd: ws.dir, env: { ...process.env, XDG_CACHE_HOME: tempDir('cairn-cache-') } });
    const cached = await loadConfig({ cwd: ws.dir, env: { ...process.env, ...env } });
    expect(cached).toEqual(fresh);
    expect(readdirSync(dir)).toHaveLength(1);

    // A mistake added to the file is reported by its key path, not hidden by the cache.
    const file = path.join(ws.dir, 'cairn.config.json');
    writeFileSync(file, JSON.stringify({ concurrency: 3, concurrenccy: 4 }));
    const bad = ws.cli(['list'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/concurrenccy: unknown key/);
  });
});
