/**
 * The quick variant of the chaos suite (issue 8) inside `npm test`: every scenario with few iterations,
 * each one required to hold its target. `npm run chaos` runs the full counts.
 */
import { describe, expect, it } from 'vitest';
import { loadScenarios, runScenario } from './chaos/suite.js';

const scenarios = await loadScenarios();

describe('chaos suite, quick', () => {
  it('has scenarios to run', () => {
    expect(scenarios.length).toBeGreaterThan(0);
  });
  for (const s of scenarios) {
    it(`${s.name}: ${s.target}`, { timeout: 180_000 }, async () => {
      const outcome = await runScenario(s, true);
      expect(outcome.failures, outcome.figure).toEqual([]);
      expect(outcome.held).toBe(true);
    });
  }
});
