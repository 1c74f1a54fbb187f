/**
 * The chaos scenarios in the order of issue 8's table. Each module in scenarios/ exports `scenario`
 * (one ChaosScenario) or `scenarios` (several); a module not named here still runs, after these.
 */
import { readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ChaosOutcome, ChaosScenario } from './scenario.js';

const ORDER = [
  'randomKill',
  'crashPoints',
  'leaseSteal',
  'concurrentWriters',
  'walGrowth',
  'diskFull',
  'damagedFiles',
  'orphans',
  'hungStage',
  'inboxAbuse',
  'hostileText',
  'secrets',
  'clock',
  'fileModes',
];

const here = fileURLToPath(import.meta.url);
const scenarioDir = path.join(path.dirname(here), 'scenarios');
// Run from source under vitest (.ts) or compiled by `npm run chaos` (.js).
const ext = path.extname(here);

export async function loadScenarios(only?: string[]): Promise<ChaosScenario[]> {
  const files = readdirSync(scenarioDir)
    .filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -ext.length));
  const rank = (name: string) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);
  files.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const all: ChaosScenario[] = [];
  for (const file of files) {
    const mod = (await import(pathToFileURL(path.join(scenarioDir, `${file}${ext}`)).href)) as {
      scenario?: ChaosScenario;
      scenarios?: ChaosScenario[];
    };
    all.push(...(mod.scenarios ?? []), ...(mod.scenario ? [mod.scenario] : []));
  }
  return only?.length ? all.filter((s) => only.includes(s.name)) : all;
}

/** Runs one scenario in a fresh directory; a thrown error is a failure, not a crash of the suite. */
export async function runScenario(s: ChaosScenario, quick: boolean, log: (m: string) => void = () => {}): Promise<ChaosOutcome> {
  const workDir = mkdtempSync(path.join(os.tmpdir(), `cairn-chaos-${s.name.replace(/\W+/g, '-')}-`));
  let outcome: ChaosOutcome;
  try {
    outcome = await s.run({ quick, workDir, log });
  } catch (err) {
    outcome = { iterations: 0, figure: 'error', held: false, failures: [`${s.name} threw: ${(err as Error).stack ?? String(err)}`] };
  }
  if (outcome.held) rmSync(workDir, { recursive: true, force: true });
  else outcome.failures.push(`files kept for inspection in ${workDir}`);
  return outcome;
}
