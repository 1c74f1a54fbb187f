/**
 * `npm run bench [-- --quick] [-- --history] [-- --store postgres] [-- --only=name,name]`: every
 * scenario on a fresh data directory (or fresh PostgreSQL schemas), one table,
 * bench/results/latest.json, and the run recorded for --history. Not part of the test suite.
 * Warm-up iterations are excluded from every figure; latencies are percentiles over many samples.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CairnError, toError, UsageError } from '../src/errors.js';
import { printHistory, recordRun } from './history.js';
import { engineScenarios } from './scenarios/engine.js';
import { limitScenario } from './scenarios/limit.js';
import { peerScenario } from './scenarios/peer.js';
import { postgresScenario } from './scenarios/postgres.js';
import { processScenarios } from './scenarios/process.js';
import { formatValue, type BenchOptions, type Row } from './stats.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  try {
    return `${pkg.version}+${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()}`;
  } catch {
    return pkg.version;
  }
}

function printTable(rows: Row[]): void {
  const table = [['scenario', 'durability', 'metric', 'value', 'unit', 'target', 'held'], ...rows.map((r) => [
    r.scenario,
    r.durability,
    r.metric,
    formatValue(r.value),
    r.unit,
    r.target,
    r.held === null ? '' : r.held ? 'yes' : 'NO',
  ])];
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  for (const row of table) console.log(row.map((cell, i) => (i === 3 ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  '));
}

const SCENARIOS: Record<string, (o: BenchOptions) => Promise<Row[]>> = {
  limit: limitScenario,
  engine: engineScenarios,
  peer: peerScenario,
  process: processScenarios,
  postgres: postgresScenario,
};

const USAGE = `usage: npm run bench [-- --quick] [-- --store sqlite|postgres] [-- --only=name,name] [-- --history]
  --quick           smaller sizes: a smoke run of under a minute
  --store postgres  adds the PostgreSQL scenarios (sqlite, the default, runs without them)
  --only=names      runs only these scenarios (${Object.keys(SCENARIOS).join(', ')}); limit always runs, the others are ratios of it;
                    peer is a ratio of engine's throughput, so it needs engine in the same run
  --history         prints the figures of earlier runs instead of running`;

function parseOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean' },
        history: { type: 'boolean' },
        store: { type: 'string' },
        only: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const store = values.store ?? 'sqlite';
  if (store !== 'sqlite' && store !== 'postgres') {
    throw new UsageError(`--store ${store}: the bench knows the stores sqlite (the default) and postgres, e.g. npm run bench -- --store postgres`);
  }
  const only = values.only?.split(',').filter(Boolean);
  const unknown = only?.filter((name) => !(name in SCENARIOS)) ?? [];
  if (unknown.length) throw new UsageError(`--only: no scenario named ${unknown.join(', ')}; the scenarios are ${Object.keys(SCENARIOS).join(', ')}`);
  if (only?.includes('postgres') && store !== 'postgres') throw new UsageError('--only=postgres needs --store postgres');
  // The peer's target is a ratio of cairn's throughput, which the engine scenario measures in the same run.
  if (only?.includes('peer') && !only.includes('engine')) {
    throw new UsageError('--only=peer is judged against the engine scenario\'s throughput of the same run: add engine, e.g. --only=engine,peer');
  }
  return { store, only, quick: values.quick ?? false, history: values.history ?? false, help: values.help ?? false };
}

async function main(): Promise<void> {
  const options = parseOptions();
  if (options.help) return console.log(USAGE);
  if (options.history) return printHistory();
  const { store, quick, only } = options;
  const machine = { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.release()}` };
  console.log(`cairn ${version()} bench${quick ? ' (--quick: smaller sizes, a smoke run)' : ''}`);
  console.log(`machine: ${machine.cores} cores, ${machine.cpu}, node ${machine.node}, ${machine.platform}; warm-up iterations excluded\n`);
  const opts: BenchOptions = { quick, reference: new Map() };
  const started = Date.now();
  const rows: Row[] = [];
  for (const [name, scenario] of Object.entries(SCENARIOS)) {
    if (name === 'postgres' && store !== 'postgres') continue;
    if (!only || only.includes(name) || name === 'limit') rows.push(...(await scenario(opts)));
  }
  printTable(rows);
  const missed = rows.filter((r) => r.held === false);
  console.log(`\n${rows.filter((r) => r.held).length} targets held, ${missed.length} missed${missed.length ? `: ${missed.map((r) => `${r.scenario}/${r.durability}`).join(', ')}` : ''}; ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const run = { at: started, version: version(), quick, machine, rows };
  mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(path.join(root, 'bench', 'results', 'latest.json'), `${JSON.stringify(run, null, 2)}\n`);
  const where = await recordRun(run);
  console.log(`results: bench/results/latest.json, and recorded in ${where} (npm run bench -- --history)`);
}

try {
  await main();
} catch (e) {
  const error = toError(e);
  console.error(`bench: ${error.message}${error instanceof UsageError ? `\n${USAGE}` : ''}`);
  process.exitCode = error instanceof CairnError ? error.exitCode : 1;
}
