/**
 * The peer a user would otherwise pick: LangGraph's SQLite checkpointer (`SqliteSaver.put`) on the
 * same pragmas, writing the same workload's checkpoints (one per transition: tasks × 5), so cairn's
 * transitions/s can be read against its puts/s.
 */
import { emptyCheckpoint, uuid6 } from '@langchain/langgraph-checkpoint';
import { SqliteSaver } from '@langchain/langgraph-checkpoint-sqlite';
import Database from 'better-sqlite3';
import path from 'node:path';
import { inFreshDir, medianOfRuns, nowMs, spread, type BenchOptions, type Durability, type Row } from '../stats.js';

async function putsPerSecond(durability: Durability, tasks: number): Promise<number> {
  return inFreshDir(async (dir) => {
    const db = new Database(path.join(dir, 'langgraph.db'));
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
    const saver = new SqliteSaver(db);
    const put = async (thread: number, step: number) => {
      const checkpoint = { ...emptyCheckpoint(), id: uuid6(step), ts: new Date().toISOString() };
      checkpoint.channel_values = { request: `throughput ${thread}`, stage: step, output: 'x'.repeat(300) };
      await saver.put({ configurable: { thread_id: `t${thread}`, checkpoint_ns: '' } }, checkpoint, { source: 'loop', step, parents: {} });
    };
    for (let i = 0; i < 50; i++) await put(-1, i); // warm-up, not counted
    const start = nowMs();
    let puts = 0;
    for (let step = 0; step < 5; step++) {
      for (let t = 0; t < tasks; t++, puts++) await put(t, step);
    }
    const seconds = (nowMs() - start) / 1000;
    db.close();
    return puts / seconds;
  });
}

export async function peerScenario(opts: BenchOptions): Promise<Row[]> {
  const rows: Row[] = [];
  for (const durability of ['full', 'normal'] as const) {
    const measured = await medianOfRuns(opts.quick ? 1 : 5, () => putsPerSecond(durability, opts.quick ? 300 : 2000));
    const puts = measured.median;
    const cairn = opts.reference.get(`throughput.${durability}`) ?? NaN;
    rows.push({
      scenario: 'peer',
      durability,
      metric: `LangGraph SqliteSaver.put, same workload, median of ${measured.values.length} (${spread(measured.values)})`,
      value: puts,
      unit: 'puts/s',
      target: `cairn ≥ 2 × puts/s; ratio ${(cairn / puts).toFixed(2)}×`,
      held: cairn >= 2 * puts,
    });
  }
  return rows;
}
