/**
 * `cairn submit --file F` and `cairn submit -`: requests longer than a command line, through the real
 * binary, and the usage errors (exit 2) for a missing or empty file and a request given twice.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CAIRN_BIN, Workspace } from './helpers/cairnProcess.js';
import { tempDir } from './helpers/tmp.js';

/** A request with newlines, quotes and shell metacharacters, longer than one argument may be (128 KiB). */
const LONG_REQUEST = `Refactor the parser.\n\n${'Keep "quotes", $(no subshell) and `ticks`; '.repeat(4000)}\nDone.`;

function submitWithStdin(ws: Workspace, args: string[], input: string) {
  const r = spawnSync(process.execPath, [CAIRN_BIN, 'submit', ...args], { cwd: ws.dir, input, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('cairn submit --file and -', () => {
  it('takes a long request from a file or from stdin, verbatim but for the ends trimmed', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const file = path.join(ws.dir, 'request.md');
    writeFileSync(file, `${LONG_REQUEST}\n`);
    expect(Buffer.byteLength(LONG_REQUEST)).toBeGreaterThan(131_072); // MAX_ARG_STRLEN: one argv string cannot hold it

    const fromFile = ws.json<{ id: number }>(['submit', '--file', file, '--tag', 'long']).id;
    expect(ws.show(fromFile)).toMatchObject({ request: LONG_REQUEST, tags: ['long'] });

    const piped = submitWithStdin(ws, ['-', '--json', '--priority', 'high'], `\n${LONG_REQUEST}\n\n`);
    expect(piped.code).toBe(0);
    const fromStdin = JSON.parse(piped.stdout).id;
    expect(ws.show(fromStdin)).toMatchObject({ request: LONG_REQUEST, priority: 'high' });
  });

  it('refuses a missing file, an empty file or stdin, a directory, a request given twice, and none at all (exit 2)', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const empty = path.join(ws.dir, 'empty.md');
    writeFileSync(empty, ' \n\n');
    mkdirSync(path.join(ws.dir, 'adir'));
    const cases: [string[], RegExp][] = [
      [['--file', 'nope.md'], /--file nope\.md: no such file/],
      [['--file', empty], /the request from --file .*empty\.md is empty/],
      [['--file', 'adir'], /--file adir is a directory/],
      [['do this', '--file', empty], /give the request once: as an argument or with --file, not both/],
      [[], /submit needs a request; give it as an argument .*--file.*cairn submit -/],
    ];
    for (const [args, message] of cases) {
      const r = ws.cli(['submit', ...args]);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.code, args.join(' ')).toBe(2);
    }
    const blank = submitWithStdin(ws, ['-'], '   \n');
    expect(blank.stderr).toMatch(/the request from stdin is empty/);
    expect(blank.code).toBe(2);
    ws.createDataDir(); // nothing was submitted, so only an empty data directory can be listed
    expect(ws.json<unknown[]>(['list'])).toEqual([]);
  });
});
