/**
 * Four readers hold 100 ms read transactions back to back, staggered so one is always open, while a
 * real daemon runs tasks (module stages: many transitions a second) that its cycle command submits.
 * With a reader always open, SQLite's automatic PASSIVE checkpoint can never reset the WAL; without a
 * checkpoint that waits for a gap between readers, the -wal file grows for ever.
 */
import Database from 'better-sqlite3';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Workspace } from '../../helpers/cairnProcess.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { sleep, waitAllTerminal } from '../waitFor.js';

const MiB = 1024 * 1024;
/**
 * The bound: the guard's threshold (src/store/walSizeGuard.ts; 16 MiB while the daemon's background
 * checkpointer runs, src/store/walCheckpointer.ts) plus what the daemon commits while
 * checkpoint attempts that found no gap between readers back off (at most 4 s between attempts; this
 * daemon writes ~8 MiB/s, far more than a real one). Without the checkpointer: 50 MiB in 6 s, never emptied.
 */
const WAL_BOUND_BYTES = 48 * MiB;
/** How much bigger the -wal may get in the second half than in the first before it counts as growing. */
const LATE_GROWTH_BYTES = 4 * MiB;
const READERS = 4;
const HOLD_MS = 100;

export const scenario: ChaosScenario = {
  name: 'WAL growth',
  fault: `${READERS} readers holding ${HOLD_MS} ms read transactions back to back (always one open) while the daemon writes`,
  target: `max -wal size bounded: ≤ ${WAL_BOUND_BYTES / MiB} MiB, and no bigger in the second half of the run than in the first (+${LATE_GROWTH_BYTES / MiB} MiB)`,
  async run({ quick, workDir, log }) {
    const ws = new Workspace(workDir);
    const stageModule = path.join(workDir, 'stage.mjs');
    writeFileSync(stageModule, "export default async () => ({ verdict: 'approve', comments: 'fine', padding: 'x'.repeat(2000) });\n");
    const stages = { plan: { module: stageModule }, implement: { module: stageModule }, review: { module: stageModule }, verify: { module: stageModule } };
    // The daemon is the only writer: its cycle command tops the queue up to 40 pending tasks every heartbeat.
    const cycleScript = path.join(workDir, 'cycle.mjs');
    writeFileSync(
      cycleScript,
      `import { existsSync } from 'node:fs';
let input = '';
process.stdin.on('data', (c) => (input += c)).on('end', () => {
  if (existsSync(process.env.WAL_STOP)) return;
  const pending = JSON.parse(input).counts.pending ?? 0;
  for (let i = pending; i < 40; i++) console.log(JSON.stringify({ request: 'wal growth ' + Date.now() + ' ' + i }));
});
`,
    );
    const stopFile = path.join(workDir, 'stop-submitting');
    ws.writeConfig({
      approvals: { plan: 'auto', implementation: 'auto' },
      concurrency: 8,
      stages,
      cycle: { run: [process.execPath, cycleScript], env: { WAL_STOP: stopFile } },
    });
    const durationMs = quick ? 6000 : 120_000;
    const walFile = `${ws.dbFile}-wal`;
    const daemon = ws.startDaemon();
    const failures: string[] = [];
    let stop = false;
    let readTransactions = 0;
    const samples: { at: number; size: number }[] = [];
    const readers: Database.Database[] = [];
    try {
      await daemon.waitForLog(/daemon started/);
      {
        const t0 = Date.now();
        const reader = async (i: number) => {
          const db = new Database(ws.dbFile, { timeout: 5000 });
          readers.push(db);
          await sleep((i * HOLD_MS) / READERS);
          while (!stop) {
            db.exec('BEGIN');
            db.prepare('SELECT count(*) FROM transitions').get(); // the read that pins a WAL snapshot
            await sleep(HOLD_MS);
            db.exec('COMMIT');
            readTransactions++;
          }
        };
        const sampler = async () => {
          while (!stop) {
            samples.push({ at: Date.now() - t0, size: existsSync(walFile) ? statSync(walFile).size : 0 });
            await sleep(50);
          }
        };
        const loops = [...Array.from({ length: READERS }, (_, i) => reader(i)), sampler()];
        for (let elapsed = 0; elapsed < durationMs; elapsed += 1000) {
          await sleep(1000);
          log(`${Math.round((Date.now() - t0) / 1000)} s: -wal ${(samples.at(-1)!.size / MiB).toFixed(1)} MiB`);
        }
        stop = true;
        writeFileSync(stopFile, '');
        await Promise.all(loops);
      }
      await waitAllTerminal(ws.dbFile, 60_000);
    } finally {
      stop = true;
      for (const db of readers) if (db.open) db.close();
      await daemon.kill('SIGTERM');
    }

    const max = Math.max(...samples.map((s) => s.size));
    // A starved -wal grows with every commit, so it ends the run far larger than it was half-way. One
    // that is checkpointed either starts over from its beginning (its size stays put) or is emptied.
    const resets = samples.filter((s, i) => i > 0 && s.size < samples[i - 1].size);
    const firstHalfMax = Math.max(0, ...samples.filter((s) => s.at < durationMs / 2).map((s) => s.size));
    const secondHalfMax = Math.max(0, ...samples.filter((s) => s.at >= durationMs / 2).map((s) => s.size));
    const lateGrowth = secondHalfMax - firstHalfMax;
    if (max > WAL_BOUND_BYTES) failures.push(`the -wal reached ${(max / MiB).toFixed(1)} MiB, over the ${WAL_BOUND_BYTES / MiB} MiB bound`);
    if (lateGrowth > LATE_GROWTH_BYTES) {
      failures.push(`the -wal kept growing: ${(firstHalfMax / MiB).toFixed(1)} MiB in the first half, ${(secondHalfMax / MiB).toFixed(1)} MiB in the second: checkpoints are starved`);
    }
    const inv = checkInvariants(ws.dbFile);
    const submitted = inv.tasks;
    failures.push(...inv.violations);
    return {
      iterations: submitted,
      figure: `max -wal ${(max / MiB).toFixed(1)} MiB (first half ${(firstHalfMax / MiB).toFixed(1)}, second ${(secondHalfMax / MiB).toFixed(1)}), emptied ${resets.length} times; ${submitted} tasks, ${inv.completions} stage results, ${readTransactions} read transactions`,
      held: failures.length === 0,
      failures,
    };
  },
};
