/**
 * `npm run bench` takes a few flags; a typo must say so, not start a minutes-long run (it did:
 * `--help` ran the whole bench, `--only=typo` ran only the limit and said nothing).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/store/sqlite.js';
import { CAIRN_BIN } from './helpers/cairnProcess.js';
import { tempDir } from './helpers/tmp.js';

const BENCH = path.join(path.dirname(CAIRN_BIN), '..', 'bench', 'run.js');

function bench(...args: string[]) {
  return benchIn(process.cwd(), ...args);
}

function benchIn(cwd: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [BENCH, ...args], { cwd, encoding: 'utf8', timeout: 20_000 });
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

  it('--history shows one line per measure across runs, whatever figures each run put in brackets', async () => {
    const dir = tempDir();
    const store = openSqliteStore(path.join(dir, 'state', 'cairn.db'));
    const insert = store.db.prepare("INSERT INTO bench_runs (at, version, quick, machine, rows) VALUES (?, ?, 0, '{}', ?)");
    const run = (spread: string, value: number, p50: string) => [
      { scenario: 'throughput', durability: 'full', metric: `2000 tasks × 5 stages, median of 5 (${spread})`, value, unit: 'transitions/s', target: '', held: true },
      { scenario: 'reads', durability: '-', metric: `get(id) p99 (p50 ${p50} µs), 100000 tasks`, value: value / 1000, unit: 'µs', target: '', held: true },
    ];
    insert.run(Date.UTC(2026, 11, 1), '0.1.0+aaaaaaa', JSON.stringify(run('9,001 / 9,500', 9500, '13.1')));
    insert.run(Date.UTC(2026, 11, 2), '0.1.0+bbbbbbb', JSON.stringify(run('10,002 / 10,400', 10400, '12.9')));
    await store.close();

    const r = benchIn(dir, '--history');
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines.filter((l) => l.startsWith('throughput full'))).toEqual([expect.stringMatching(/median of 5 +9500 {2}10400 transitions\/s$/)]);
    expect(lines.filter((l) => l.startsWith('reads -'))).toEqual([expect.stringMatching(/get\(id\) p99, 100000 tasks +9\.50 {2}10\.40 µs$/)]);
    expect(lines.at(-1)).toMatch(/#1 2026-12-01T00:00 0\.1\.0\+aaaaaaa, #2 2026-12-02T00:00 0\.1\.0\+bbbbbbb/);
  });
});
