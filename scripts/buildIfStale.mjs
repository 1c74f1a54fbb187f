// `npm test`'s build step: runs `npm run build` (tsc, which type-checks src/, test/ and bench/, then the
// bundle) unless the last build succeeded after every input last changed. `npm ci` already builds
// (prepare), so CI's `npm ci && npm test` type-checks once instead of twice (about 40 s on 2 cores).
// dist/src/cairn.cjs is the stamp: the bundle is written only when tsc passed (`tsc && bundle`).
// Directories count too, so a deleted file (which changes its directory's time) also rebuilds.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const STAMP = 'dist/src/cairn.cjs';
const INPUTS = ['src', 'machines', 'test', 'bench', 'scripts', 'tsconfig.json', 'vitest.config.ts', 'package.json', 'package-lock.json'];

/** The first input (file or directory) changed after `since`, or null. */
function changedAfter(since) {
  for (const input of INPUTS) {
    if (!existsSync(input)) continue;
    if (statSync(input).mtimeMs > since) return input;
    if (!statSync(input).isDirectory()) continue;
    for (const entry of readdirSync(input, { withFileTypes: true, recursive: true })) {
      const file = path.join(entry.parentPath, entry.name);
      if (statSync(file).mtimeMs > since) return file;
    }
  }
  return null;
}

const changed = existsSync(STAMP) ? changedAfter(statSync(STAMP).mtimeMs) : STAMP;
if (changed === null) {
  console.log(`dist/ was built after the last change to ${INPUTS.join(', ')}: not building again (npm run build forces it)`);
} else {
  const r = spawnSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
