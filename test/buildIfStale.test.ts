/**
 * `npm start`, `npm test` and `prepare` build only when dist/ is older than a source or a test: a fresh dist/ starts the
 * daemon in seconds instead of rebuilding for 20 s and more, and a changed, added or deleted source
 * is still built. Runs the real script in a small package whose `build` only records that it ran.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';

const SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'buildIfStale.mjs');

/** A package with src/, machines/ and a dist/ stamp, every file at `sourcesAt`, the stamp at `builtAt` (seconds). */
function makePackage(sourcesAt: number, builtAt: number): string {
  const dir = tempDir();
  const files: Record<string, string> = {
    'package.json': JSON.stringify({ name: 'stale-check', scripts: { build: 'node -e "require(\'fs\').writeFileSync(\'built\', \'\')"' } }),
    'package-lock.json': '{}',
    'tsconfig.json': '{}',
    'scripts/bundleCli.mjs': '',
    'src/cli/main.ts': '',
    'machines/task.machine.ts': '',
    'test/cliVerbs.test.ts': '',
  };
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
  for (const name of [...Object.keys(files), 'src/cli', 'src', 'machines', 'scripts', 'test']) utimesSync(path.join(dir, name), sourcesAt, sourcesAt);
  mkdirSync(path.join(dir, 'dist', 'src'), { recursive: true });
  writeFileSync(path.join(dir, 'dist', 'src', 'cairn.cjs'), '');
  utimesSync(path.join(dir, 'dist', 'src', 'cairn.cjs'), builtAt, builtAt);
  return dir;
}

/** Runs the script in `dir` with the npm on PATH, as by hand; whether it ran the build. */
function runCheck(dir: string): { built: boolean } {
  const { npm_execpath: _npm, ...env } = process.env;
  execFileSync(process.execPath, [SCRIPT], { cwd: dir, env, stdio: 'ignore' });
  const built = existsSync(path.join(dir, 'built'));
  rmSync(path.join(dir, 'built'), { force: true });
  return { built };
}

const t0 = 1_700_000_000;

describe('scripts/buildIfStale.mjs', () => {
  it('skips the build when dist/ is newer than every source', () => {
    expect(runCheck(makePackage(t0, t0 + 60)).built).toBe(false);
  });

  it('builds when a source, the lockfile or a directory (a deleted file) changed after the build, and when there is no build', () => {
    for (const changed of ['src/cli/main.ts', 'machines/task.machine.ts', 'test/cliVerbs.test.ts', 'package-lock.json', 'src/cli']) {
      const dir = makePackage(t0, t0 + 60);
      utimesSync(path.join(dir, changed), t0 + 120, t0 + 120);
      expect(runCheck(dir).built, changed).toBe(true);
    }
    const fresh = makePackage(t0, t0 + 60);
    rmSync(path.join(fresh, 'dist'), { recursive: true });
    expect(runCheck(fresh).built).toBe(true);
  });
});
