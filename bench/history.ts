/** Keeps each bench run in the project's database (bench_runs) and prints how figures moved. */
import { loadConfig } from '../src/loadConfig.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { sqlitePath } from '../src/store/openStore.js';
import { formatValue, type Row } from './stats.js';

async function openBenchStore() {
  const config = await loadConfig();
  return openSqliteStore(sqlitePath(config), { durability: config.durability });
}

export async function recordRun(run: { at: number; version: string; quick: boolean; machine: object; rows: Row[] }): Promise<string> {
  const store = await openBenchStore();
  try {
    store.db
      .prepare('INSERT INTO bench_runs (at, version, quick, machine, rows) VALUES (?, ?, ?, ?, ?)')
      .run(run.at, run.version, run.quick ? 1 : 0, JSON.stringify(run.machine), JSON.stringify(run.rows));
    return store.location;
  } finally {
    await store.close();
  }
}

/**
 * What a row measures, the same from run to run: its metric without the parenthesised figures of
 * that run (sample count, the runs behind a median, a p50 beside a p99).
 */
function measureOf(metric: string): string {
  return metric.replace(/\s+\([^)]*\)/g, '');
}

export async function printHistory(): Promise<void> {
  const store = await openBenchStore();
  try {
    const runs = store.db.prepare('SELECT at, version, quick, rows FROM bench_runs ORDER BY id').all() as {
      at: number;
      version: string;
      quick: number;
      rows: string;
    }[];
    if (runs.length === 0) return void console.log(`no bench runs recorded in ${store.location} yet; run \`npm run bench\``);
    const keys = new Map<string, string>();
    const parsed = runs.map((r) => {
      const byKey = new Map<string, Row>();
      for (const row of JSON.parse(r.rows) as Row[]) {
        const key = `${row.scenario} ${row.durability} ${measureOf(row.metric)}`;
        keys.set(key, row.unit);
        byKey.set(key, row);
      }
      return { ...r, byKey };
    });
    for (const [key, unit] of keys) {
      const values = parsed.map((r) => {
        const row = r.byKey.get(key);
        return row ? `${formatValue(row.value)}${r.quick ? 'q' : ''}` : '—';
      });
      console.log(`${key.padEnd(70)} ${values.join('  ')} ${unit}`);
    }
    console.log(`\nruns: ${parsed.map((r, i) => `#${i + 1} ${new Date(r.at).toISOString().slice(0, 16)} ${r.version}`).join(', ')} (q: --quick)`);
  } finally {
    await store.close();
  }
}
