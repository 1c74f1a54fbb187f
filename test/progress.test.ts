/**
 * Long verbs (import, migrate-store, state migrate, restore, backup) show one progress line on stderr
 * when it is a terminal, redrawn in place and erased at the end; when stderr is a pipe they print
 * nothing more than before. Runs the real binary (dist/, built first); the terminal is a
 * pseudo-terminal from util-linux's script(1).
 */
import { spawnSync } from 'node:child_process';
import { cpSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CAIRN_BIN, Workspace } from './helpers/cairnProcess.js';
import { dropTestSchemas, newTestSchema, schemaUrl } from './helpers/postgres.js';
import { tempDir } from './helpers/tmp.js';

const LEGACY = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'legacy');
const ERASE_LINE = '\r\x1b[K';
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

afterAll(async () => {
  await dropTestSchemas();
});

/** A workspace whose database holds a few tasks and some key-value state. */
function workspaceWithData(): Workspace {
  const ws = new Workspace(tempDir());
  ws.writeConfig();
  for (let i = 1; i <= 3; i++) ws.submit(`task ${i}`);
  expect(ws.cli(['state', 'set', '--ns', 'demo', 'k', '"v"']).code).toBe(0);
  return ws;
}

/**
 * Runs `cairn ARGS` on a pseudo-terminal and returns what the terminal showed (stdout and stderr
 * together; the terminal turns \n into \r\n). The command string script(1) hands its shell names
 * environment variables only, so no path or argument is ever parsed by the shell.
 */
function onTerminal(ws: Workspace, args: string[]): { code: number; screen: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, CAIRN_LOG_FORMAT: 'json', PTY_NODE: process.execPath, PTY_BIN: CAIRN_BIN };
  args.forEach((arg, i) => (env[`PTY_ARG_${i}`] = arg));
  const command = ['exec "$PTY_NODE" "$PTY_BIN"', ...args.map((_, i) => `"$PTY_ARG_${i}"`)].join(' ');
  const r = spawnSync('script', ['-qec', command, '/dev/null'], { cwd: ws.dir, env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, screen: r.stdout };
}

describe('progress when stderr is not a terminal', () => {
  it('prints nothing extra: no carriage return, no escape sequence, the same messages as before', async () => {
    const ws = workspaceWithData();
    const clean = (what: string, stderr: string) => {
      expect(stderr, what).not.toContain('\r');
      expect(stderr, what).not.toContain('\x1b');
    };

    const backup = ws.cli(['backup', path.join(ws.dir, 'copy.db')]);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stderr).toMatch(/^backup written: \S+copy\.db \([^)]*sha256 [0-9a-f]{64}\)\n$/);

    expect(ws.cli(['snapshot', '--name', 'before']).code).toBe(0);
    const restore = ws.cli(['restore', 'before']);
    expect(restore.code, restore.stderr).toBe(0);
    clean('restore', restore.stderr);
    expect(restore.stderr).toBe('');

    const migrate = ws.cli(['state', 'migrate', '--from', 'sqlite', '--to', 'json:exported']);
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(migrate.stderr).toBe('');

    cpSync(LEGACY, path.join(ws.dir, 'legacy'), { recursive: true });
    const imported = ws.cli(['import', 'legacy']);
    expect(imported.code, imported.stderr).toBe(0);
    clean('import', imported.stderr);

    const schema = await newTestSchema('progress');
    const toPostgres = spawnSync(process.execPath, [CAIRN_BIN, 'migrate-store', '--from', 'sqlite:state/cairn.db', '--to', schemaUrl(schema)], {
      cwd: ws.dir,
      env: { ...process.env, CAIRN_DATABASE_URL: '', CAIRN_LOG_FORMAT: 'json' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(toPostgres.status, toPostgres.stderr).toBe(0);
    expect(toPostgres.stderr).toMatch(/^point the daemons at it with --database URL[^\n]*\n$/);
  });
});

describe.skipIf(!hasScript)('progress on a terminal', () => {
  it('backup and import draw one line, redrawn with a carriage return and erased before their output', () => {
    const ws = workspaceWithData();
    const backup = onTerminal(ws, ['backup', path.join(ws.dir, 'copy.db')]);
    expect(backup.code, backup.screen).toBe(0);
    expect(backup.screen).toMatch(/\r\x1b\[Kbackup: copying \d+\/\d+ pages \(100%\)/);
    expect(backup.screen).toMatch(/\r\x1b\[Kbackup: hashing [\d.]+ KiB\/[\d.]+ KiB \(100%\)/);
    // Erased before the verb's own lines: nothing of the progress line stays on the screen.
    const erased = backup.screen.lastIndexOf(ERASE_LINE);
    expect(backup.screen.slice(erased + ERASE_LINE.length)).toMatch(/^\S+copy\.db\r\nbackup written: /);

    cpSync(LEGACY, path.join(ws.dir, 'legacy'), { recursive: true });
    const imported = onTerminal(ws, ['import', 'legacy']);
    expect(imported.code, imported.screen).toBe(0);
    expect(imported.screen).toMatch(/\r\x1b\[Kimport: orchestrator-tasks \S+ \d+\/\d+ items/);
    expect(imported.screen.slice(imported.screen.lastIndexOf(ERASE_LINE) + ERASE_LINE.length)).toMatch(/^imported from /);
  });
});
