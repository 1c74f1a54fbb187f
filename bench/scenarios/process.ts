/** Whole-process figures: the daemon's peak memory, and a read verb's start-up against bare node. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCairn } from '../../src/index.js';
import { inFreshDir, nowMs, percentile, type BenchOptions, type Durability, type Row } from '../stats.js';
import { fillHistory, realSnapshot } from './fixtures.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CAIRN = path.resolve(here, '..', '..', 'src', 'cairn.cjs');

async function memory(durability: Durability, tasks: number, inFlight: number): Promise<{ maxRssMb: number; started: number }> {
  return inFreshDir(async (dataDir) => {
    const snapshot = await realSnapshot(path.join(dataDir, 'template'));
    const cairn = await openCairn({ dataDir, config: { views: false } });
    fillHistory(cairn.store, snapshot, tasks - inFlight, 10);
    // The in-flight ones: pending tasks the child's daemon starts at once.
    for (let i = 0; i < inFlight; i++) await cairn.submit({ request: `in flight ${i}` });
    await cairn.stop();
    const r = spawnSync(process.execPath, [path.join(here, '..', 'memoryChild.js'), dataDir, String(inFlight), durability], { encoding: 'utf8', timeout: 180_000 });
    const line = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    return { maxRssMb: line.maxRssKb / 1024, started: line.started };
  });
}

/** Median wall time of a command over `runs`, alternating with the other so both see the same machine. */
function timeCommands(commands: string[][], runs: number): number[] {
  const samples = commands.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    commands.forEach((argv, c) => {
      const t0 = nowMs();
      const r = spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' });
      if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}`);
      samples[c].push(nowMs() - t0);
    });
  }
  return samples.map((s) => percentile([...s].sort((a, b) => a - b), 50));
}

async function cliStartup(runs: number) {
  return inFreshDir(async (dataDir) => {
    const cairn = await openCairn({ dataDir, config: { views: false } });
    const task = await cairn.submit({ request: 'show me' });
    await cairn.stop();
    const floor = [process.execPath, path.join(here, '..', 'cliFloor.js'), path.join(dataDir, 'cairn.db'), String(task.id)];
    const [show, bare, driverFloor, commanderFloor] = timeCommands(
      [
        [process.execPath, CAIRN, '--data-dir', dataDir, 'show', String(task.id), '--json'],
        [process.execPath, '-e', '0'],
        floor,
        [...floor, '--commander'],
      ],
      runs,
    );
    return { show, bare, driverFloor, commanderFloor };
  });
}

export async function processScenarios(opts: BenchOptions): Promise<Row[]> {
  const tasks = opts.quick ? 10_000 : 100_000;
  const inFlight = opts.quick ? 200 : 1000;
  const rows: Row[] = [];
  for (const durability of ['full', 'normal'] as const) {
    const m = await memory(durability, tasks, inFlight);
    rows.push({
      scenario: 'memory',
      durability,
      metric: `daemon peak RSS, ${tasks} tasks stored, ${m.started}/${inFlight} in flight`,
      value: m.maxRssMb,
      unit: 'MB',
      target: '< 150 MB',
      held: m.maxRssMb < 150 && m.started === inFlight,
    });
  }
  const c = await cliStartup(opts.quick ? 8 : 25);
  return [
    ...rows,
    { scenario: 'cli', durability: '-', metric: '`node -e 0`, median', value: c.bare, unit: 'ms', target: 'reference', held: null },
    {
      scenario: 'cli',
      durability: '-',
      metric: 'floor: driver + open + one query, median',
      value: c.driverFloor,
      unit: 'ms',
      target: `reference; ratio ${(c.driverFloor / c.bare).toFixed(2)}×`,
      held: null,
    },
    {
      scenario: 'cli',
      durability: '-',
      metric: 'floor: the same + commander, median',
      value: c.commanderFloor,
      unit: 'ms',
      target: `reference; ratio ${(c.commanderFloor / c.bare).toFixed(2)}×`,
      held: null,
    },
    {
      scenario: 'cli',
      durability: '-',
      metric: '`cairn show ID --json`, median',
      value: c.show,
      unit: 'ms',
      target: `≤ 1.3 × node -e 0; ratio ${(c.show / c.bare).toFixed(2)}×`,
      held: c.show <= 1.3 * c.bare,
    },
  ];
}
