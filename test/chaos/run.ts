/**
 * `npm run chaos [-- --quick] [-- --only=name,name]`: runs the reliability scenarios of issue 8 against
 * real cairn processes and prints one table: scenario, iterations, figure, target, held.
 * Exits 1 when any scenario's target is not held, naming what broke.
 */
import os from 'node:os';
import { loadScenarios, runScenario } from './suite.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',').filter(Boolean);
const unknown = args.filter((a) => a !== '--quick' && !a.startsWith('--only='));
if (unknown.length) {
  console.error(`chaos: unknown argument ${unknown.join(' ')}; use --quick and/or --only=name,name`);
  process.exit(2);
}

const scenarios = await loadScenarios(only);
if (scenarios.length === 0) {
  console.error(`chaos: no scenario named ${only?.join(', ')}`);
  process.exit(2);
}
console.log(`cairn chaos suite${quick ? ' (quick)' : ''}: ${scenarios.length} scenarios, ${os.cpus().length} cores, Node ${process.version}`);

const rows: { name: string; iterations: number; figure: string; target: string; held: boolean; seconds: number }[] = [];
const failures: string[] = [];
for (const s of scenarios) {
  const started = Date.now();
  process.stdout.write(`\n▶ ${s.name}: ${s.fault}\n`);
  const outcome = await runScenario(s, quick, (m) => process.stdout.write(`  \x1b[2m${m}\x1b[0m\n`));
  const seconds = (Date.now() - started) / 1000;
  rows.push({ name: s.name, iterations: outcome.iterations, figure: outcome.figure, target: s.target, held: outcome.held, seconds });
  process.stdout.write(`  ${outcome.held ? 'held' : 'NOT HELD'}: ${outcome.figure} (${seconds.toFixed(1)} s)\n`);
  for (const f of outcome.failures) failures.push(`${s.name}: ${f}`);
}

const header = ['scenario', 'iterations', 'figure', 'target', 'held', 'time'];
const table = rows.map((r) => [r.name, String(r.iterations), r.figure, r.target, r.held ? 'yes' : 'NO', `${r.seconds.toFixed(1)} s`]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(' | ');
console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}`);
for (const row of table) console.log(line(row));
const held = rows.filter((r) => r.held).length;
console.log(`\n${held} of ${rows.length} held`);
if (failures.length) {
  console.log(`\nWhat broke:\n${failures.map((f) => `- ${f}`).join('\n')}`);
  process.exit(1);
}
