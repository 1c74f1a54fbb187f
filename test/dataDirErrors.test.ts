/**
 * A data directory cairn cannot use is named with what to do, exit 1: before, a file in its place
 * gave the raw `EEXIST: file already exists, mkdir` and another user's directory `EPERM: … chmod`.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CAIRN_BIN, Workspace } from './helpers/cairnProcess.js';
import { tempDir } from './helpers/tmp.js';

/**
 * Lets another user reach `file` for `run`: the directories above it that others cannot enter (a clone
 * under `mktemp -d`, which is 0700) get o+x, and their modes are put back afterwards.
 */
function withTraversable<T>(file: string, run: () => T): T {
  const opened: [string, number][] = [];
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const mode = statSync(dir).mode & 0o7777;
    if ((mode & 0o001) === 0) opened.push([dir, mode]);
  }
  try {
    for (const [dir, mode] of opened) chmodSync(dir, mode | 0o001);
    return run();
  } finally {
    for (const [dir, mode] of opened) chmodSync(dir, mode);
  }
}

describe('data directory problems', () => {
  it('a file where the data directory should be: start and a read verb say so', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    writeFileSync(ws.dataDir, 'not a directory');
    for (const args of [['start'], ['list']]) {
      const r = ws.cli(args);
      expect(r.stderr.trim()).toBe(
        `cairn: the data directory ${ws.dataDir} is a file; move it aside, or point --data-dir (or dataDir in the config) at a directory`,
      );
      expect(r.code).toBe(1);
    }
  });

  it('a data directory of another user: names the owner and what to do', () => {
    // Tests run as root here: root makes the directory and cairn runs as nobody. As another user, a
    // directory to be made under / (root's) is the same case.
    const isRoot = process.getuid?.() === 0;
    const cwd = tempDir();
    chmodSync(cwd, 0o755);
    const dataDir = isRoot ? path.join(cwd, 'state') : path.join('/', `cairn-test-${process.pid}`);
    if (isRoot) mkdirSync(dataDir, { mode: 0o700 });
    // As nobody, the built cli must be reachable: a clone in a private directory is not, otherwise.
    const r = withTraversable(CAIRN_BIN, () =>
      spawnSync(process.execPath, [CAIRN_BIN, 'list', '--data-dir', dataDir], {
        cwd,
        encoding: 'utf8',
        timeout: 30_000,
        ...(isRoot ? { uid: 65534, gid: 65534 } : {}),
      }),
    );
    const owner = isRoot ? 'it belongs' : '/ belongs';
    expect(r.stderr.trim()).toBe(`cairn: cannot write the data directory ${dataDir}: permission denied (${owner} to uid 0; run as that user or chown it)`);
    expect(r.status).toBe(1);
  });
});
