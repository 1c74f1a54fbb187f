/**
 * Where the data directory is: a `dataDir` read from a config file (and the default `state` beside a
 * config file) is relative to that file, so a verb run from anywhere with `--config` finds the same
 * tasks; `--data-dir` and CAIRN_DATA_DIR are relative to the working directory, as a path typed in a
 * shell is. Runs the real binary from different directories, sharing one validation cache.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CAIRN_BIN, type CliResult } from './helpers/cairnProcess.js';
import { tempDir } from './helpers/tmp.js';

function cairnIn(cwd: string, args: string[], env: NodeJS.ProcessEnv): CliResult {
  const r = spawnSync(process.execPath, [CAIRN_BIN, ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function requests(r: CliResult): string[] {
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { request: string }[]).map((t) => t.request);
}

describe('data directory resolution', () => {
  it('a config file\'s dataDir, given or default, is beside the file: read verbs from another directory find its tasks', () => {
    const project = tempDir();
    const elsewhere = tempDir();
    const env = { XDG_CACHE_HOME: tempDir('cairn-cache-') };
    const config = path.join(project, 'cairn.config.json');

    for (const [settings, dataDir] of [[{}, 'state'], [{ dataDir: 'data' }, 'data']] as const) {
      writeFileSync(config, JSON.stringify(settings));
      expect(cairnIn(project, ['submit', `queued into ${dataDir}`], env).code).toBe(0);
      expect(existsSync(path.join(project, dataDir, 'cairn.db'))).toBe(true);
      expect(requests(cairnIn(elsewhere, ['--config', config, 'list', '--json'], env))).toEqual([`queued into ${dataDir}`]);
      expect(existsSync(path.join(elsewhere, dataDir))).toBe(false);
    }
  });

  it('--data-dir and CAIRN_DATA_DIR are relative to the working directory, whatever the config file says', () => {
    const project = tempDir();
    const elsewhere = tempDir();
    const env = { XDG_CACHE_HOME: tempDir('cairn-cache-') };
    const config = path.join(project, 'cairn.config.json');
    writeFileSync(config, JSON.stringify({ dataDir: 'data' }));
    // Validated once with dataDir from the file: the same settings from CAIRN_DATA_DIR must not reuse it.
    mkdirSync(path.join(project, 'data'), { mode: 0o700 }); // a read verb refuses a data directory that does not exist
    expect(requests(cairnIn(elsewhere, ['--config', config, 'list', '--json'], env))).toEqual([]);

    expect(cairnIn(elsewhere, ['--config', config, 'submit', 'from the environment'], { ...env, CAIRN_DATA_DIR: 'data' }).code).toBe(0);
    expect(cairnIn(elsewhere, ['--config', config, '--data-dir', 'flagged', 'submit', 'from the flag'], env).code).toBe(0);

    expect(requests(cairnIn(elsewhere, ['--data-dir', 'data', 'list', '--json'], env))).toEqual(['from the environment']);
    expect(requests(cairnIn(elsewhere, ['list', '--json'], { ...env, CAIRN_DATA_DIR: 'flagged' }))).toEqual(['from the flag']);
    expect(requests(cairnIn(elsewhere, ['--config', config, 'list', '--json'], env))).toEqual([]);
    expect(existsSync(path.join(project, 'flagged'))).toBe(false);
  });
});
