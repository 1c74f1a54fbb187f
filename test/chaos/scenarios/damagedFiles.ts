/**
 * Damaged database files must never be started on in silence. After a good snapshot exists, each case
 * damages a copy of the data directory: a flipped header byte, a flipped byte in the page holding the
 * tasks table, a -wal truncated mid-frame (after a kill -9 left committed transactions in it), a stale
 * -wal beside a database file restored by hand (`cp` of a snapshot). `cairn start` must refuse, name
 * the file and point to the newest good snapshot (`cairn restore …`); read verbs that touch a damaged
 * page must say the same. Then the command it points to must bring back a database the daemon runs on.
 */
import Database from 'better-sqlite3';
import { cpSync, openSync, readSync, writeSync, closeSync, statSync, truncateSync, copyFileSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Workspace, type DaemonProcess } from '../../helpers/cairnProcess.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { readDb, waitAllTerminal } from '../waitFor.js';

type Damage = 'header byte' | 'interior page' | 'truncated wal' | 'stale wal';
const DAMAGES: Damage[] = ['header byte', 'interior page', 'truncated wal', 'stale wal'];

function flipByte(file: string, offset: number): void {
  const fd = openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, offset);
    b[0] ^= 0xff;
    writeSync(fd, b, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

/** Runs `cairn start` until it exits or says it started; a start is silent when it started. */
async function tryStart(ws: Workspace): Promise<{ started: boolean; stderr: string; daemon: DaemonProcess }> {
  const daemon = ws.startDaemon();
  const outcome = await Promise.race([
    daemon.exited.then(() => 'exited' as const),
    daemon.waitForLog(/daemon started/, 20_000).then(() => 'started' as const, () => 'exited' as const),
  ]);
  if (outcome === 'started') await daemon.kill('SIGKILL');
  await daemon.exited;
  return { started: outcome === 'started', stderr: daemon.stderr, daemon };
}

export const scenario: ChaosScenario = {
  name: 'damaged files',
  fault: 'flipped header byte, flipped interior page, -wal truncated mid-frame, stale -wal beside a hand-restored file',
  target: '0 silent starts: `cairn start` (and read verbs that touch the damage) refuse, name the file and point to `cairn restore <newest good snapshot>`',
  async run({ quick, workDir, log }) {
    const base = new Workspace(path.join(workDir, 'base'));
    base.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' }, snapshots: { onStart: false } });
    const failures: string[] = [];
    // A database with history, a good snapshot of it, then more work that a kill -9 leaves in the -wal.
    let daemon = base.startDaemon();
    let snapshotName: string;
    try {
      await daemon.waitForLog(/daemon started/);
      for (let i = 0; i < 3; i++) base.submit(`before the snapshot ${i + 1}`);
      await waitAllTerminal(base.dbFile, 30_000);
      snapshotName = base.json<{ name: string }>(['snapshot']).name;
      for (let i = 0; i < 2; i++) base.submit(`after the snapshot ${i + 1}`);
      await waitAllTerminal(base.dbFile, 30_000);
    } finally {
      await daemon.kill('SIGKILL');
    }
    // A heartbeat may have taken an hourly snapshot after ours: cairn points to the newest good one, and so must we.
    snapshotName = base.json<{ name: string }[]>(['snapshots', '--json'])[0].name;
    if (!existsSync(`${base.dbFile}-wal`) || statSync(`${base.dbFile}-wal`).size === 0) failures.push('the kill -9 left no -wal: the WAL cases test nothing');
    log(`base: 5 tasks, snapshot ${snapshotName}, -wal ${statSync(`${base.dbFile}-wal`).size} bytes`);

    let silentStarts = 0;
    let silentReads = 0;
    let unclear = 0;
    let restoredOk = 0;
    const cases = quick ? DAMAGES : [...DAMAGES, ...DAMAGES, ...DAMAGES];
    for (const [i, damage] of cases.entries()) {
      const dir = path.join(workDir, `case-${i + 1}`);
      cpSync(base.dir, dir, { recursive: true });
      const ws = new Workspace(dir);
      ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' }, snapshots: { onStart: false } });
      const pageSize = readDb(base.dbFile, (db) => db.pragma('page_size', { simple: true }) as number);
      const wal = `${ws.dbFile}-wal`;
      let touchesReads = false;
      if (damage === 'header byte') {
        // Checkpoint the -wal first (a connection that read something does it on close), so the damaged header is the one SQLite reads.
        const db = new Database(ws.dbFile);
        db.prepare('SELECT count(*) FROM sqlite_master').get();
        db.close();
        if (existsSync(wal)) failures.push(`${damage}: the -wal was not checkpointed away before the damage`);
        flipByte(ws.dbFile, 16); // the page size's high byte: 4096 becomes 0xef00, not a power of two
        touchesReads = true;
      } else if (damage === 'interior page') {
        const db = new Database(ws.dbFile);
        const root = db.prepare("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'tasks'").pluck().get() as number;
        db.close(); // checkpoints the -wal into the file and removes it
        flipByte(ws.dbFile, (root - 1) * pageSize); // the b-tree page type of the tasks table's root page
        touchesReads = true;
      } else if (damage === 'truncated wal') {
        truncateSync(wal, statSync(wal).size - Math.floor((pageSize + 24) / 2));
      } else {
        // Restored by hand: the snapshot copied over the database, the -wal of the newer database left beside it.
        copyFileSync(path.join(ws.dataDir, 'snapshots', `${snapshotName}.db`), ws.dbFile);
      }

      const start = await tryStart(ws);
      const names = (text: string) => text.includes(ws.dbFile) && text.includes(`cairn restore ${snapshotName}`);
      if (start.started) {
        silentStarts++;
        failures.push(`${damage}: cairn start started on the damaged database`);
      } else if (!names(start.stderr)) {
        unclear++;
        failures.push(`${damage}: cairn start refused without naming ${ws.dbFile} and \`cairn restore ${snapshotName}\`: ${start.stderr.trim().slice(0, 400)}`);
      }
      if (touchesReads) {
        for (const verb of [['list'], ['show', '1']]) {
          const r = ws.cli([...verb, '--json']);
          if (r.code === 0) {
            silentReads++;
            failures.push(`${damage}: cairn ${verb.join(' ')} read the damaged database without a word`);
          } else if (!names(r.stderr)) {
            unclear++;
            failures.push(`${damage}: cairn ${verb.join(' ')} failed without naming the file and the restore: ${r.stderr.trim().slice(0, 400)}`);
          }
        }
      }
      log(`${damage}: start ${start.started ? 'STARTED' : 'refused'}: ${start.stderr.trim().split('\n').at(-1)?.slice(0, 300)}`);

      // Follow the advice: the restore it names must give back a database the daemon runs on.
      const restore = ws.cli(['restore', snapshotName]);
      if (restore.code !== 0) {
        failures.push(`${damage}: \`cairn restore ${snapshotName}\` failed: ${restore.stderr.trim().slice(0, 400)}`);
        continue;
      }
      // Quick mode runs the daemon after one restore only (the one over a file SQLite cannot open); the full run after each.
      if (quick && damage !== 'header byte') {
        restoredOk++;
        failures.push(...checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger')).violations.map((v) => `${damage}: ${v}`));
        continue;
      }
      let after: DaemonProcess | null = null;
      try {
        after = ws.startDaemon();
        await after.waitForLog(/daemon started/);
        ws.submit('after the restore');
        await waitAllTerminal(ws.dbFile, 30_000);
        restoredOk++;
      } catch (e) {
        failures.push(`${damage}: after the restore the daemon did not run: ${(e as Error).message.slice(0, 400)}`);
      } finally {
        await after?.kill('SIGTERM');
      }
      failures.push(...checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger')).violations.map((v) => `${damage}: ${v}`));
      if (!quick) rmSync(dir, { recursive: true, force: true });
    }
    return {
      iterations: cases.length,
      figure: `silent starts ${silentStarts}/${cases.length}, silent reads ${silentReads}, refusals without file + restore ${unclear}; restored ${restoredOk}/${cases.length}`,
      held: failures.length === 0,
      failures,
    };
  },
};
