/**
 * vitest's globalSetup: many tests run the built `cairn` (dist/), so a bare `npx vitest` after a change
 * to src/ or machines/ would test the old code. `npm test` builds first; otherwise this stops the run
 * before any test with what to do.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Written last by `npm run build` (tsc, then the bundle): its time is the build's. */
const BUILD_STAMP = path.join(root, 'dist', 'src', 'cairn.cjs');
const SOURCES = ['src', 'machines'];

/** The most recently changed file under `dir`, with its time. */
function newest(dir: string): { file: string; mtimeMs: number } | null {
  let best: { file: string; mtimeMs: number } | null = null;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const { mtimeMs } = statSync(file);
    if (!best || mtimeMs > best.mtimeMs) best = { file, mtimeMs };
  }
  return best;
}

export default function distIsFresh(): void {
  if (!existsSync(BUILD_STAMP)) {
    throw new Error(`dist/ is not built (${path.relative(root, BUILD_STAMP)} is missing) and the tests run the built cli: run npm run build, or npm test, which builds first`);
  }
  const built = statSync(BUILD_STAMP).mtimeMs;
  for (const dir of SOURCES) {
    const changed = newest(path.join(root, dir));
    if (changed && changed.mtimeMs > built) {
      throw new Error(`dist/ is older than ${dir}/ (${path.relative(root, changed.file)} changed after the last build): run npm run build, or npm test, which builds first`);
    }
  }
}
