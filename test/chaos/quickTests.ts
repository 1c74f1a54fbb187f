/**
 * The quick chaos run inside `npm test` (issue 8): one test per scenario, each required to hold its
 * target. Split over two files: chaos.quick.test.ts runs beside other test files; chaos.alone.test.ts
 * runs RUN_ALONE afterwards with the machine to itself (vitest.config.ts).
 */
import { describe, expect, it } from 'vitest';
import { loadScenarios, runScenario } from './suite.js';

/**
 * Scenarios whose figure is a rate that a busy machine moves: WAL growth compares the -wal file's size
 * in the two halves of a 6 s run, and failed twice beside other work (load 6-15), holding when alone.
 */
export const RUN_ALONE = ['WAL growth'];

export async function quickChaosTests(which: 'alone' | 'beside others'): Promise<void> {
  const all = await loadScenarios();
  const scenarios = all.filter((s) => RUN_ALONE.includes(s.name) === (which === 'alone'));
  describe(`chaos suite, quick${which === 'alone' ? ', alone' : ''}`, () => {
    if (which === 'beside others') {
      it('has scenarios to run', () => {
        expect(all.length).toBeGreaterThan(0);
        // A renamed scenario must not drop out of both files.
        for (const name of RUN_ALONE) expect(all.map((s) => s.name)).toContain(name);
      });
    }
    for (const s of scenarios) {
      it(`${s.name}: ${s.target}`, { timeout: 180_000 }, async () => {
        const outcome = await runScenario(s, true);
        expect(outcome.failures, outcome.figure).toEqual([]);
        expect(outcome.held).toBe(true);
      });
    }
  });
}
