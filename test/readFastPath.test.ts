/**
 * Read verbs run without commander when written out in full (src/cairn.ts). Whichever path parses a
 * command, the user must see the same thing: these tests run each read command through the `cairn`
 * executable and through the commander program alone (dist/src/cli/main.js) and compare.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCommand } from '../src/cli/readCommand.js';
import { CAIRN_BIN, Workspace } from './helpers/cairnProcess.js';
import { tempDir } from './helpers/tmp.js';

const COMMANDER_ONLY = path.join(path.dirname(CAIRN_BIN), 'cli', 'main.js');

describe('readCommand: which commands skip commander', () => {
  it('takes a read verb with its id and flags, global flags before or after, with = or a space', () => {
    expect(readCommand(['show', '12', '--json'])).toMatchObject({ args: ['12'], opts: { json: true }, global: {} });
    expect(readCommand(['--data-dir', '/d', 'history', '3', '--archived'])).toMatchObject({
      verb: { name: 'history' },
      args: ['3'],
      opts: { archived: true },
      global: { dataDir: '/d' },
    });
    expect(readCommand(['list', '--status=pending', '--limit', '5', '--config', 'c.json', '--json'])).toMatchObject({
      verb: { name: 'list' },
      opts: { status: 'pending', limit: '5', json: true },
      global: { config: 'c.json' },
    });
    expect(readCommand(['list-resumable'])).toMatchObject({ verb: { name: 'list-resumable' }, args: [] });
    expect(readCommand(['status', '--database', 'postgres://h/db'])).toMatchObject({ verb: { name: 'status' }, global: { database: 'postgres://h/db' } });
  });

  it('leaves to commander everything it would have to explain: help, unknown flags, missing or extra arguments', () => {
    for (const argv of [
      ['show'],
      ['show', '1', '2'],
      ['show', '1', '--help'],
      ['show', '-h'],
      ['show', '1', '--bogus'],
      ['show', '1', '--json=yes'],
      ['list', '--status'],
      ['list', '--limit', '-1'],
      ['--list-resumable'],
      ['submit', 'show'],
      ['list', 'show'],
      ['approve', '1'],
      [],
    ]) {
      expect(readCommand(argv), argv.join(' ')).toBeNull();
    }
  });
});

describe('the cairn executable and the commander program print the same', () => {
  function both(ws: Workspace, args: string[], cwd = ws.dir) {
    const run = (entry: string) => {
      const r = spawnSync(process.execPath, [entry, ...args], { cwd, encoding: 'utf8', env: { ...process.env, CAIRN_LOG_FORMAT: 'json' } });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    return { fast: run(CAIRN_BIN), commander: run(COMMANDER_ONLY) };
  }

  it('for every read verb, their errors and exit codes', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const first = ws.submit('first task', ['--tag', 'a']);
    ws.submit('second task', ['--priority', 'high']);
    expect(ws.cli(['cancel', String(first), '--reason', 'not needed']).code).toBe(0);

    for (const args of [
      ['show', '1'],
      ['show', '1', '--json'],
      ['--data-dir', ws.dataDir, 'show', '2', '--json'],
      ['history', '1'],
      ['history', '1', '--json', '--archived'],
      ['list'],
      ['list', '--status', 'cancelled', '--json'],
      ['list', '--tag=a', '--limit', '1'],
      ['list', '--state', 'nonsense'],
      ['list-resumable', '--json'],
      ['show', '99'],
      ['show', 'abc'],
      ['show', '--json'],
      ['show', '1', '--bogus'],
    ]) {
      const { fast, commander } = both(ws, args);
      expect(fast, args.join(' ')).toEqual(commander);
    }

    // From another directory the global flags alone find the config and the data: a flag the fast
    // path misnamed would read an empty ./state there and say the task does not exist.
    const elsewhere = both(ws, ['--config', path.join(ws.dir, 'cairn.config.json'), '--data-dir', ws.dataDir, 'show', '2', '--json'], tempDir());
    expect(elsewhere.fast.code, elsewhere.fast.stderr).toBe(0);
    expect(elsewhere.fast).toEqual(elsewhere.commander);

    // status prints ages that move between two runs; its shape and counts must agree.
    const { fast, commander } = both(ws, ['status', '--json']);
    expect(fast.code).toBe(0);
    expect(JSON.parse(fast.stdout).counts).toEqual(JSON.parse(commander.stdout).counts);
  });

  it('usage errors still say what is wrong and exit 2, through either path', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const missing = ws.cli(['show']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing required argument 'id'/);
    const badId = ws.cli(['show', 'abc']);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/"abc" is not a task id/);
    const unknown = ws.cli(['show', '1', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown option '--bogus'/);
  });
});
