// Runs `npm run build` only when dist/ is older than what it is built from. `npm start`, `npm test`
// and `prepare` run it: the build takes 20 s and more (tsc, which type-checks src/, test/ and bench/,
// then the bundle); `npm ci` has built dist/ already, so CI's `npm ci && npm test` type-checks once,
// not twice; and npm 11's `npx cairn` in the clone links the clone into npx's cache on its first call,
// which runs `prepare` again (that was the 20 s first `npx cairn`). `npm run build` always builds.
// The stamp is dist/src/cairn.cjs, which the build writes last (scripts/bundleCli.mjs, after tsc
// succeeded), so a build that failed half-way is redone. A directory's own mtime counts too: deleting
// or renaming a source file changes it.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const STAMP = 'dist/src/cairn.cjs';
// test/ and bench/ are built into dist/ too (the chaos runner and the bench run from there).
const INPUTS = ['src', 'machines', 'test', 'bench', 'scripts', 'tsconfig.json', 'vitest.config.ts', 'package.json', 'package-lock.json'];

/** The newest mtime under `file` (itself included), and which file has it. */
function newest(file) {
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return { file, mtimeMs: 0 };
  }
  let found = { file, mtimeMs: stat.mtimeMs };
  if (stat.isDirectory()) {
    for (const name of readdirSync(file)) {
      const inner = newest(path.join(file, name));
      if (inner.mtimeMs > found.mtimeMs) found = inner;
    }
  }
  return found;
}

function stampMtimeMs() {
  try {
    return statSync(STAMP).mtimeMs;
  } catch {
    return 0;
  }
}

const stamp = stampMtimeMs();
const source = INPUTS.map(newest).reduce((a, b) => (b.mtimeMs > a.mtimeMs ? b : a));
if (stamp > source.mtimeMs) {
  process.stderr.write(`dist/ is up to date (built after the last change, to ${source.file}); skipping the build\n`);
} else {
  process.stderr.write(stamp ? `${source.file} changed after the last build; building dist/\n` : 'no build in dist/ yet; building it\n');
  // Under npm (start, prepare) the npm that runs us; by hand, the one on PATH.
  const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
  const build = spawnSync(npm[0], [...npm.slice(1), 'run', 'build', '--silent'], { stdio: 'inherit' });
  process.exit(build.status ?? 1);
}
