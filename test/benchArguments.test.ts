/**
 * `npm run bench` takes a few flags; a typo must say so, not start a minutes-long run (it did:
 * `--help` ran the whole bench, `--only=typo` ran only the limit and said nothing).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CAIRN_BIN } from './helpers/cairnProcess.js';

const BENCH = path.join(path.dirname(CAIRN_BIN), '..', 'bench', 'run.js');

function bench(...args: string[]) {
  const r = spawnSync(process.execPath, [BENCH, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('bench arguments', () => {
  it('--help prints the usage and runs nothing', () => {
    const r = bench('--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^usage: npm run bench /);
    expect(r.out).not.toContain('machine:');
  });

  it('an unknown flag, scenario or store is refused with the usage and exit code 2, and nothing runs', () => {
    const cases: [string[], string][] = [
      [['--hepl'], "bench: Unknown option '--hepl'"],
      [['--only=limit,typo'], 'bench: --only: no scenario named typo; the scenarios are limit, engine, peer, process, postgres'],
      [['--store', 'mysql'], 'bench: --store mysql: the bench knows the stores sqlite (the default) and postgres'],
      [['--only=postgres'], 'bench: --only=postgres needs --store postgres'],
      [['--only=peer'], 'bench: --only=peer is judged against the engine scenario\'s throughput of the same run: add engine'],
    ];
    for (const [args, message] of cases) {
      const r = bench(...args);
      expect({ args, code: r.code, out: r.out }).toEqual({ args, code: 2, out: '' });
      expect(r.err).toContain(message);
      expect(r.err).toContain('usage: npm run bench');
    }
  });
});
