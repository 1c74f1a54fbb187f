/**
 * The daemon plus 8 CLI processes writing at once, each a stream of mutations mixing submit, note,
 * `state set` and approve on the same SQLite file. No user may see SQLITE_BUSY ("database is
 * locked"): every write opens BEGIN IMMEDIATE and waits out the busy timeout. Afterwards every write a
 * CLI reported done must be in the database.
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { Workspace } from '../../helpers/cairnProcess.js';
import { cliAsync, type AsyncCliResult } from '../cliAsync.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { describeStates, isAtRest, waitUntil } from '../settle.js';
import { readTasks } from '../waitFor.js';
import { timedStages } from '../timedStage.js';

const WRITERS = 8;
const BUSY = /SQLITE_BUSY|database is locked|locked by another process/i;

interface Done {
  submits: { id: number; request: string }[];
  notes: { task: number; text: string }[];
  states: { ns: string; key: string; value: string }[];
  approvals: number[];
  approvalsRefused: number;
}

/** One writer: `ops` CLI calls one after another, cycling through the four kinds of mutation. */
async function writer(ws: Workspace, w: number, ops: number, busy: string[], failures: string[]): Promise<Done> {
  const done: Done = { submits: [], notes: [], states: [], approvals: [], approvalsRefused: 0 };
  const toApprove: number[] = [];
  const run = async (args: string[]): Promise<AsyncCliResult> => {
    const r = await cliAsync(ws, args);
    if (BUSY.test(r.stderr)) busy.push(`writer ${w}: cairn ${args.join(' ')}: ${r.stderr.trim()}`);
    return r;
  };
  for (let j = 0; j < ops; j++) {
    const kind = done.submits.length === 0 ? 0 : j % 4;
    if (kind === 0) {
      const request = `writer ${w} task ${j}`;
      const r = await run(['submit', request, '--json']);
      if (r.code === 0) {
        const id = JSON.parse(r.stdout).id as number;
        done.submits.push({ id, request });
        toApprove.push(id);
      } else failures.push(`writer ${w}: cairn submit exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    } else if (kind === 1) {
      const task = done.submits[j % done.submits.length].id;
      const text = `writer ${w} insight ${j}`;
      const r = await run(['note', String(task), '--insight', text]);
      if (r.code === 0) done.notes.push({ task, text });
      else failures.push(`writer ${w}: cairn note ${task} exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    } else if (kind === 2) {
      const ns = `writer-${w}`;
      const key = `k${j}`;
      const value = JSON.stringify({ j });
      const r = await run(['state', 'set', '--ns', ns, key, value]);
      if (r.code === 0) done.states.push({ ns, key, value });
      else failures.push(`writer ${w}: cairn state set exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    } else {
      // The writer's own oldest unapproved task: usually at its plan gate by now, else refused and kept.
      const task = toApprove[0];
      if (task === undefined) continue;
      const r = await run(['approve', String(task), '--by', `writer-${w}`]);
      if (r.code === 0) {
        done.approvals.push(task);
        toApprove.shift();
      } else if (r.code === 1 && /approve needs a task at/.test(r.stderr)) done.approvalsRefused++;
      else failures.push(`writer ${w}: cairn approve ${task} exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    }
  }
  return done;
}

/** Every write a CLI reported done, looked up in the database; returns what is missing. */
function findLostWrites(dbFile: string, all: Done[]): string[] {
  const lost: string[] = [];
  const db = new Database(dbFile, { readonly: true });
  try {
    const task = db.prepare('SELECT request FROM tasks WHERE id = ?').pluck();
    const note = db.prepare(`SELECT COUNT(*) FROM notes WHERE task_id = ? AND text = ? AND kind = 'insight'`).pluck();
    const kv = db.prepare('SELECT value FROM kv_entries WHERE ns = ? AND key = ?').pluck();
    const approvals = db.prepare(`SELECT COUNT(*) FROM transitions WHERE task_id = ? AND event_type = 'APPROVE'`).pluck();
    for (const d of all) {
      for (const s of d.submits) if (task.get(s.id) !== s.request) lost.push(`submitted task ${s.id} ("${s.request}") is not in the database`);
      for (const n of d.notes) if (note.get(n.task, n.text) !== 1) lost.push(`note "${n.text}" on task ${n.task} is not in the database once`);
      for (const s of d.states) {
        const stored = kv.get(s.ns, s.key) as string | undefined;
        if (stored === undefined || JSON.stringify(JSON.parse(stored)) !== s.value) lost.push(`state ${s.ns}/${s.key} = ${s.value} is ${stored ?? 'missing'}`);
      }
      for (const id of d.approvals) if ((approvals.get(id) as number) < 1) lost.push(`the approval of task ${id} is not in its history`);
    }
  } finally {
    db.close();
  }
  return lost;
}

export const scenario: ChaosScenario = {
  name: 'concurrent writers',
  fault: `the daemon plus ${WRITERS} CLI processes at once × 500 mutations each (quick: × 4), mixing submit, note, state set and approve`,
  target: 'database is locked shown to a user 0, lost writes 0',
  async run({ quick, workDir, log }) {
    // Each mutation is a node process (~0.2 CPU-s to start): 8 × 20 takes 15–45 s on two cores, past
    // the quick suite's budget, so quick runs one round of the four kinds per writer.
    const ops = quick ? 4 : 500;
    const ws = new Workspace(workDir);
    // Manual gates: approvals are among the mutations, and the daemon writes stage results meanwhile.
    ws.writeConfig({ concurrency: 4, snapshots: { onStart: false }, stages: timedStages(ws) });
    const daemon = ws.startDaemon();
    const busy: string[] = [];
    const failures: string[] = [];
    let all: Done[];
    try {
      await daemon.waitForLog(/cairn daemon started/, 30_000);
      const started = Date.now();
      all = await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(ws, w, ops, busy, failures)));
      log(`${WRITERS * ops} CLI mutations in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      await waitUntil(() => isAtRest(readTasks(ws.dbFile)), 60_000, 'every task coming to rest', () => describeStates(readTasks(ws.dbFile)));
    } finally {
      const exit = await daemon.kill('SIGTERM');
      if (exit.code !== 0) failures.push(`the daemon exited ${exit.code ?? exit.signal} on SIGTERM: ${daemon.stderr.trim()}`);
    }
    const daemonBusy = daemon.lines.filter((l) => BUSY.test(String(l.msg)) || BUSY.test(JSON.stringify(l.err ?? '')));
    for (const l of daemonBusy) busy.push(`daemon: ${l.msg}`);
    const lost = findLostWrites(ws.dbFile, all);
    failures.push(...busy, ...lost, ...checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger')).violations);
    const count = (k: keyof Omit<Done, 'approvalsRefused'>) => all.reduce((n, d) => n + d[k].length, 0);
    log(
      `${count('submits')} submits, ${count('notes')} notes, ${count('states')} state sets, ${count('approvals')} approvals ` +
        `(${all.reduce((n, d) => n + d.approvalsRefused, 0)} refused: task not at its gate yet)`,
    );
    return {
      iterations: WRITERS * ops,
      figure: `database is locked shown ${busy.length}, lost writes ${lost.length}`,
      held: failures.length === 0,
      failures,
    };
  },
};
