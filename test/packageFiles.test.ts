/**
 * What `npm pack` ships (package.json `files`): the built program, the SQL migrations it reads at run
 * time, README and LICENSE; not the tests, the benches or source maps. Lists the files with
 * `npm pack --dry-run --json --ignore-scripts` (no build: it reads dist/, built by `npm test` first),
 * then runs the listed files alone, as an installed package would, to show the migrations are found.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url))).replace(/[/\\]dist$/, '');

interface PackResult {
  entryCount: number;
  size: number;
  files: { path: string }[];
}

let packed: string[] = [];

beforeAll(() => {
  if (!existsSync(path.join(root, 'dist', 'src', 'cairn.cjs'))) throw new Error('dist/ is not built: run npm run build first');
  // --ignore-scripts: no prepack/prepare, so listing the files does not rebuild dist/ under other tests.
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  packed = (JSON.parse(out) as PackResult[])[0].files.map((f) => f.path).sort();
}, 60_000);

describe('npm pack', () => {
  it('ships the bin, the library entry, every migration, README and LICENSE', () => {
    expect(packed).toEqual(expect.arrayContaining(['dist/src/cairn.cjs', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/machines/task.machine.js']));
    expect(packed).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']));
    for (const backend of ['sqlite', 'postgres']) {
      const dir = path.join('src', 'store', 'migrations', backend);
      const migrations = readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.sql'));
      expect(migrations.length, backend).toBeGreaterThan(0);
      for (const file of migrations) expect(packed, file).toContain(`${dir}/${file}`);
    }
  });

  it('leaves out the tests, the benches, source and source maps', () => {
    const unwanted = packed.filter((f) => /^(dist\/)?(test|bench)\//.test(f) || f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts')));
    expect(unwanted).toEqual([]);
    expect(packed.filter((f) => f.startsWith('src/') && !f.startsWith('src/store/migrations/'))).toEqual([]);
  });

  it('runs from the shipped files alone: a store open finds and applies the migrations', () => {
    const pkg = path.join(tempDir(), 'cairn');
    for (const file of packed) {
      mkdirSync(path.dirname(path.join(pkg, file)), { recursive: true });
      copyFileSync(path.join(root, file), path.join(pkg, file));
    }
    // The dependencies an install would bring; nothing else of the repository is in reach.
    symlinkSync(path.join(root, 'node_modules'), path.join(pkg, 'node_modules'), 'dir');
    const dataDir = path.join(path.dirname(pkg), 'data');
    const cairn = (args: string[]) => spawnSync(process.execPath, [path.join(pkg, 'dist', 'src', 'cairn.cjs'), ...args, '--data-dir', dataDir], { encoding: 'utf8' });
    const submitted = cairn(['submit', 'from the packed files']);
    expect(submitted.status, submitted.stderr).toBe(0);
    expect(submitted.stderr).toContain('task 1 submitted');
    const status = cairn(['status', '--json']);
    expect(status.status, status.stderr).toBe(0);
    expect(cairn(['show', '1', '--json']).stdout).toContain('from the packed files');
  });
});
