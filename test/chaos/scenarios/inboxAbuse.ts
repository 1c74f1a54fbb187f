/**
 * The inbox under abuse: a burst of files, slow writers (one file in several chunks with pauses), a
 * symlink to a file outside the inbox, a FIFO, a 2 GB (sparse) file, names with `..` and a leading
 * `-`, and a kill -9 of the daemon mid-burst followed by a restart. Every valid file becomes its tasks
 * exactly once; nothing outside the inbox is read; the intake never hangs.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Workspace } from '../../helpers/cairnProcess.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { readTasks, sleep, waitFor } from '../waitFor.js';

const OUTSIDE_CANARY = 'outside-the-inbox-canary-7f3a';

/** Writes `content` in `chunks` pieces with a pause between them, as a slow network copy does. */
async function slowWrite(file: string, content: string, chunks: number, pauseMs: number): Promise<void> {
  const fd = openSync(file, 'w');
  try {
    const size = Math.ceil(content.length / chunks);
    for (let i = 0; i < content.length; i += size) {
      writeSync(fd, content.slice(i, i + size));
      await sleep(pauseMs);
    }
  } finally {
    closeSync(fd);
  }
}

export const scenario: ChaosScenario = {
  name: 'inbox abuse',
  fault: '1,000-file burst, 50 slow writers, symlink out, FIFO, 2 GB sparse file, `..`/`-` names, kill -9 mid-burst',
  target: 'tasks = valid files, duplicates 0, files read outside the inbox 0, hangs 0',
  async run({ quick, workDir, log }) {
    const burst = quick ? 100 : 1000;
    const slowWriters = quick ? 10 : 50;
    const ws = new Workspace(workDir);
    // A module stage costs no process: the figure is about intake, not stage runs. Manual gates park tasks after planning.
    const stageModule = path.join(workDir, 'noop-stage.mjs');
    writeFileSync(stageModule, 'export default async () => ({ ok: true });\n');
    const noop = { module: stageModule };
    ws.writeConfig({ concurrency: 2, snapshots: { onStart: false }, stages: { plan: noop, implement: noop, review: noop, verify: noop } });
    const inbox = path.join(ws.dataDir, 'inbox');
    mkdirSync(inbox, { recursive: true });
    const failures: string[] = [];
    const valid = new Map<string, string>(); // file name -> the request it holds

    const outside = path.join(workDir, 'outside.md');
    writeFileSync(outside, `${OUTSIDE_CANARY}: a file outside the inbox that a symlink points at\n`);
    const invalid = ['evil-link.md', 'pipe.md', 'huge.md', 'broken.json'];
    let daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/watching the inbox/, quick ? 30_000 : 180_000);
      // The hostile files first: a FIFO or a huge read that blocked the intake would hold up everything after it.
      symlinkSync(outside, path.join(inbox, 'evil-link.md'));
      execFileSync('mkfifo', [path.join(inbox, 'pipe.md')]);
      const fd = openSync(path.join(inbox, 'huge.md'), 'w');
      ftruncateSync(fd, 2 * 1024 ** 3); // sparse: 2 GB by size, no blocks written
      closeSync(fd);
      writeFileSync(path.join(inbox, 'broken.json'), '{"request": "unterminated');
      for (const name of ['-rf.md', '--help.md', 'a..b.md', 'up...md', '-..-.md', '-$(touch pwned).md']) {
        const request = `weird name ${name}`;
        writeFileSync(path.join(inbox, name), request);
        valid.set(name, request);
      }

      for (let i = 0; i < burst; i++) {
        const name = `burst-${String(i).padStart(4, '0')}.md`;
        valid.set(name, `burst task ${i}`);
        writeFileSync(path.join(inbox, name), `burst task ${i}\n`);
      }
      // kill -9 once part of the burst is in: the intake is then somewhere between insert and move.
      await waitFor('a third of the burst to be taken in', 60_000, () => (readTasks(ws.dbFile).length >= burst / 3 ? true : undefined), 20);
      await daemon.kill('SIGKILL');
      log(`killed the daemon with ${readTasks(ws.dbFile).length} tasks taken in`);
      // And once exactly in the window a random kill may miss: tasks committed, file not yet moved.
      daemon = ws.startDaemon([], { CAIRN_CRASH_AT: 'after-inbox-insert' });
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      void daemon.exited.then((e) => (exit = e));
      const crashed = await waitFor('the daemon to crash after an inbox insert', 30_000, () => exit).catch(() => null);
      if (crashed?.signal !== 'SIGKILL') failures.push(`the daemon with CAIRN_CRASH_AT=after-inbox-insert did not crash there (${JSON.stringify(crashed)})`);
      log(`crashed after an inbox insert with ${readTasks(ws.dbFile).length} tasks taken in`);
      daemon = ws.startDaemon();
      await daemon.waitForLog(/watching the inbox/, quick ? 30_000 : 180_000);
      // The slow writers write while a daemon watches (during the burst, the daemons were mostly down).
      const writers: Promise<void>[] = [];
      for (let i = 0; i < slowWriters; i++) {
        const name = `slow-${i}.json`;
        const request = `slow writer ${i}`;
        valid.set(name, request);
        // Some pauses outlast the watcher's 250 ms stability window, as a slow copy's do.
        writers.push(slowWrite(path.join(inbox, name), JSON.stringify({ request, tags: ['slow'] }, null, 2), quick ? 3 : 4, [60, 150, 400, 600][i % 4]));
      }
      await Promise.all(writers);

      // Drained: only accepted/ and rejected/ are left. A file still there at the deadline is a hang.
      const drainStarted = Date.now();
      try {
        await waitFor('the inbox to drain', quick ? 30_000 : 180_000, () => (readdirSync(inbox).every((f) => f === 'accepted' || f === 'rejected') ? true : undefined), 100);
      } catch {
        /* counted below */
      }
      log(`inbox drained ${Date.now() - drainStarted} ms after the last write`);
    } finally {
      await daemon.kill('SIGTERM');
    }

    const left = readdirSync(inbox).filter((f) => f !== 'accepted' && f !== 'rejected');
    const hangs = left.length;
    for (const f of left) failures.push(`${f} is still in the inbox: the intake hung or skipped it`);
    const rejected = readdirSync(path.join(inbox, 'rejected'));
    for (const name of invalid) {
      if (!rejected.includes(name)) failures.push(`${name} was not moved to rejected/`);
      else if (!rejected.includes(`${name}.error.txt`)) failures.push(`${name} was rejected without an .error.txt saying why`);
    }
    const accepted = readdirSync(path.join(inbox, 'accepted'));
    if (accepted.length !== valid.size) failures.push(`${accepted.length} files in accepted/, want ${valid.size}`);

    const tasks = readTasks(ws.dbFile);
    const byRequest = new Map<string, number>();
    for (const t of tasks) byRequest.set(t.request, (byRequest.get(t.request) ?? 0) + 1);
    const duplicates = [...byRequest.values()].reduce((n, c) => n + c - 1, 0);
    if (duplicates) failures.push(`${duplicates} duplicate task(s): ${[...byRequest].filter(([, c]) => c > 1).slice(0, 5).map(([r, c]) => `"${r}" x${c}`).join(', ')}`);
    const wanted = new Set(valid.values());
    const missing = [...wanted].filter((r) => !byRequest.has(r));
    for (const r of missing.slice(0, 10)) failures.push(`"${r}" never became a task`);
    const strays = tasks.filter((t) => !wanted.has(t.request));
    const readOutside = strays.filter((t) => t.request.includes(OUTSIDE_CANARY)).length;
    if (readOutside) failures.push(`${readOutside} task(s) hold the text of ${outside}: the symlink was followed`);
    for (const t of strays) if (!t.request.includes(OUTSIDE_CANARY)) failures.push(`task ${t.id} holds a request from no valid file: ${JSON.stringify(t.request.slice(0, 80))}`);
    if (!existsSync(outside) || !readFileSync(outside, 'utf8').includes(OUTSIDE_CANARY)) failures.push(`${outside} was moved or changed`);

    const inv = checkInvariants(ws.dbFile);
    failures.push(...inv.violations);
    return {
      iterations: valid.size + invalid.length,
      figure: `tasks ${tasks.length} vs valid files ${valid.size}, duplicates ${duplicates}, read outside ${readOutside}, hangs ${hangs}`,
      held: failures.length === 0 && tasks.length === valid.size,
      failures,
    };
  },
};
