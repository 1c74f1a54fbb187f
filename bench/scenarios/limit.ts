/**
 * The SQLite limit: raw better-sqlite3 on the same file system and pragmas as cairn, one INSERT of a
 * ~500-byte JSON row plus one UPDATE per transaction, and the same with 100 of them per transaction.
 * These are the references the engine's figures are ratios of.
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { inFreshDir, nowMs, type BenchOptions, type Durability, type Row } from '../stats.js';

const PAYLOAD = JSON.stringify({ value: 'x'.repeat(440), context: { attempts: { plan: 1 }, outputs: {} } });

function measure(file: string, durability: Durability, perTransaction: number, transactions: number): number {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, task INTEGER, body TEXT, n INTEGER DEFAULT 0)');
  const insert = db.prepare('INSERT INTO t (task, body) VALUES (?, ?)');
  const update = db.prepare('UPDATE t SET n = n + 1 WHERE id = ?');
  const tx = db.transaction((base: number) => {
    for (let i = 0; i < perTransaction; i++) {
      const info = insert.run(base + i, PAYLOAD);
      update.run(info.lastInsertRowid);
    }
  });
  for (let i = 0; i < Math.min(50, transactions); i++) tx.immediate(i); // warm-up, not counted
  const start = nowMs();
  for (let i = 0; i < transactions; i++) tx.immediate(i * perTransaction);
  const seconds = (nowMs() - start) / 1000;
  db.close();
  return (transactions * perTransaction) / seconds;
}

export async function limitScenario(opts: BenchOptions): Promise<Row[]> {
  const rows: Row[] = [];
  for (const durability of ['full', 'normal'] as const) {
    await inFreshDir(async (dir) => {
      const single = measure(path.join(dir, 'single.db'), durability, 1, opts.quick ? 1000 : 5000);
      const batched = measure(path.join(dir, 'batched.db'), durability, 100, opts.quick ? 100 : 400);
      opts.reference.set(`limit.single.${durability}`, single);
      rows.push(
        { scenario: 'limit', durability, metric: 'insert+update, 1 per tx', value: single, unit: 'tx/s', target: 'reference', held: null },
        { scenario: 'limit', durability, metric: 'insert+update, 100 per tx', value: batched, unit: 'rows/s', target: 'reference', held: null },
      );
    });
  }
  return rows;
}
