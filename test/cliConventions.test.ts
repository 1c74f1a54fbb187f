/**
 * The conventions a user expects of a command-line tool: a version flag, help that lists the flags
 * every verb takes, and a read that does not create what it was asked to read. Runs the real binary (dist/, built first).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';
import { Workspace } from './helpers/cairnProcess.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

describe('cairn --version and help', () => {
  it('prints package.json\'s version for --version and -V, alone or after a global flag', () => {
    const ws = new Workspace(tempDir());
    for (const args of [['--version'], ['-V'], ['--data-dir', 'elsewhere', '--version']]) {
      const r = ws.cli(args);
      expect(r, args.join(' ')).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
    }
  });

  it('shows the global flags in a subcommand\'s help', () => {
    const ws = new Workspace(tempDir());
    for (const verb of ['show', 'start', 'submit']) {
      const r = ws.cli([verb, '--help']);
      expect(r.code, verb).toBe(0);
      for (const flag of ['--config <file>', '--data-dir <dir>', '--database <url>']) expect(r.stdout, `${verb} --help`).toContain(flag);
    }
  });
});

describe('a read verb on a data directory that does not exist', () => {
  it('says so, exits 1 and creates nothing; a write verb still creates it', () => {
    const ws = new Workspace(tempDir());
    const missing = path.join(ws.dir, 'mistyped');
    // The fast path's spellings and one commander takes (a flag after --json is still a read).
    for (const args of [['show', '5'], ['history', '5', '--archived'], ['list', '--json'], ['list-resumable'], ['status'], ['--list-resumable']]) {
      const r = ws.cli([...args, '--data-dir', missing]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toContain(`the data directory ${missing} does not exist`);
      expect(existsSync(missing), args.join(' ')).toBe(false);
    }
    expect(ws.cli(['submit', 'first', '--data-dir', missing]).code).toBe(0);
    expect(existsSync(path.join(missing, 'cairn.db'))).toBe(true);
    expect(ws.cli(['show', '1', '--data-dir', missing]).code).toBe(0);
  });
});

describe('cairn list cuts a long request by code points', () => {
  it('never splits an emoji in half', () => {
    const ws = new Workspace(tempDir());
    // 58 letters and three emoji: 61 code points (64 UTF-16 units) for a 60-wide column.
    const request = `${'a'.repeat(58)}😀😀😀`;
    expect(ws.cli(['submit', request]).code).toBe(0);
    const r = ws.cli(['list']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${'a'.repeat(58)}😀…`);
    expect(r.stdout).not.toContain('\uFFFD'); // a lone surrogate reaches the terminal as U+FFFD
  });
});

describe('--json errors', () => {
  it('print {"error": {"code", "message"}} on stdout as well as the text on stderr', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    expect(ws.cli(['submit', 'one task']).code).toBe(0);
    const cases: [args: string[], exitCode: number, code: string, message: RegExp][] = [
      [['show', '99999', '--json'], 1, 'TASK_NOT_FOUND', /^task 99999 does not exist/], // the read fast path
      [['--json', 'history', '99999'], 1, 'TASK_NOT_FOUND', /^task 99999 does not exist/],
      [['approve', '99999', '--json'], 1, 'TASK_NOT_FOUND', /^task 99999 does not exist/], // commander's verbs
      [['approve', '1', '--json'], 1, 'INVALID_TRANSITION', /^task 1 is pending/],
      [['show', 'abc', '--json'], 2, 'USAGE', /"abc" is not a task id/],
      [['submit', 'x', '--priority', 'urgent', '--json'], 2, 'USAGE', /urgent/], // commander's own usage error
    ];
    for (const [args, exitCode, code, message] of cases) {
      const r = ws.cli(args);
      expect(r.code, args.join(' ')).toBe(exitCode);
      const printed = JSON.parse(r.stdout);
      expect(Object.keys(printed.error).sort(), args.join(' ')).toEqual(['code', 'message']);
      expect(printed.error.code, args.join(' ')).toBe(code);
      expect(printed.error.message, args.join(' ')).toMatch(message);
      expect(r.stderr, args.join(' ')).toMatch(/\S/);
    }
    // Without --json a failure leaves stdout empty, as before.
    expect(ws.cli(['show', '99999'])).toMatchObject({ code: 1, stdout: '' });
  });
});
