/**
 * CAIRN_CRASH_AT=<label> makes a daemon or a CLI verb SIGKILL itself at a named point (every label of
 * src/process/crashPoints.ts); CAIRN_CRASH_AFTER lets it pass the point a few times first, so the ten
 * crashes per label land at different writes, stages, files and legacy rows. After each crash the
 * daemon is restarted (or the verb run again) and recovery is checked: tasks complete, the shared
 * invariants hold, a half-taken snapshot is not listed as good, a half-done import re-runs without
 * duplicates, and an inbox file is neither lost nor taken in twice.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CRASH_POINTS, type CrashPoint } from '../../../src/process/crashPoints.js';
import { STAGE_SCRIPT, Workspace } from '../../helpers/cairnProcess.js';
import { cliAsync } from '../cliAsync.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { runUntilSettled } from '../settle.js';
import { readTasks } from '../waitFor.js';
import { readStageRuns, timedStages } from '../timedStage.js';

const SETTLE_MS = 60_000;
/**
 * How long an armed process may take to reach its crash point. A deadline, not a wait: it dies as soon as
 * it gets there. Quick runs start every label at once, beside another test file on a 2-core machine;
 * 20 s there left snapshot-before-rename's daemon unreached under load.
 */
const REACH_MS = 60_000;
const LEGACY_DB = path.join(path.dirname(STAGE_SCRIPT), '..', 'legacy', 'orchestrator-tasks.db');

interface Attempt {
  /** Whether the process really died at the point (a point not reached is not coverage). */
  crashed: boolean;
  failures: string[];
}

type Case = (ws: Workspace, iteration: number) => Promise<Attempt>;

/** The checks every case ends with: invariants, and no stage ran twice at once. */
function finalChecks(ws: Workspace): string[] {
  return [...checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger')).violations, ...readStageRuns(ws).overlaps];
}

function autoConfig(ws: Workspace, extra: Record<string, unknown> = {}): void {
  ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' }, snapshots: { onStart: false }, stages: timedStages(ws), ...extra });
}

async function submit(ws: Workspace, request: string): Promise<number> {
  const r = await cliAsync(ws, ['submit', request, '--json']);
  if (r.code !== 0) throw new Error(`cairn submit exited ${r.code ?? r.signal}: ${r.stderr}`);
  return JSON.parse(r.stdout).id as number;
}

/** A daemon armed at `label` dies while running two tasks; a plain restart must finish both. */
function daemonCase(label: CrashPoint, passesOf: (iteration: number) => number): Case {
  return async (ws, iteration) => {
    autoConfig(ws);
    const ids = await Promise.all([submit(ws, `${label} a`), submit(ws, `${label} b`)]);
    const passes = passesOf(iteration);
    const crashing = ws.startDaemon([], { CAIRN_CRASH_AT: label, CAIRN_CRASH_AFTER: String(passes) });
    const exit = await Promise.race([crashing.exited, new Promise<null>((r) => setTimeout(() => r(null), REACH_MS).unref())]);
    if (exit === null) await crashing.kill('SIGKILL');
    const tasks = await runUntilSettled(ws, SETTLE_MS);
    const failures = ids.filter((id) => tasks.find((t) => t.id === id)?.state !== 'completed').map((id) => `task ${id} did not complete after the crash`);
    return { crashed: exit?.signal === 'SIGKILL', failures: [...failures, ...finalChecks(ws)] };
  };
}

/** Inbox files dropped before an armed daemon starts; it dies after committing one file's tasks. */
const inboxCase: Case = async (ws, iteration) => {
  autoConfig(ws);
  const inbox = path.join(ws.dataDir, 'inbox');
  mkdirSync(inbox, { recursive: true, mode: 0o700 });
  const files = 1 + (iteration % 3);
  const requests = Array.from({ length: files }, (_, n) => `inbox file ${n} of iteration ${iteration}`);
  requests.forEach((request, n) => {
    writeFileSync(path.join(inbox, `task-${n}.json.tmp`), JSON.stringify({ request }));
    renameSync(path.join(inbox, `task-${n}.json.tmp`), path.join(inbox, `task-${n}.json`));
  });
  const crashing = ws.startDaemon([], { CAIRN_CRASH_AT: 'after-inbox-insert', CAIRN_CRASH_AFTER: String(files - 1) });
  const exit = await Promise.race([crashing.exited, new Promise<null>((r) => setTimeout(() => r(null), REACH_MS).unref())]);
  if (exit === null) await crashing.kill('SIGKILL');
  const waiting = () => readdirSync(inbox).filter((f) => f !== 'accepted' && f !== 'rejected');
  const tasks = await runUntilSettled(ws, SETTLE_MS, () => waiting().length === 0);
  const failures: string[] = [];
  for (const request of requests) {
    const n = tasks.filter((t) => t.request === request).length;
    if (n !== 1) failures.push(`inbox request "${request}" became ${n} tasks, want 1`);
  }
  const accepted = readdirSync(path.join(inbox, 'accepted'));
  if (accepted.length !== files) failures.push(`accepted/ holds ${accepted.length} files (${accepted.join(', ')}), want ${files}`);
  const rejected = readdirSync(path.join(inbox, 'rejected'));
  if (rejected.length) failures.push(`rejected/ holds ${rejected.join(', ')}`);
  for (const t of tasks) if (t.state !== 'completed') failures.push(`task ${t.id} ended ${t.state}`);
  return { crashed: exit?.signal === 'SIGKILL', failures: [...failures, ...finalChecks(ws)] };
};

/** What `cairn snapshots --json` lists, each checked against its file: present and the recorded sha256. */
async function listedSnapshots(ws: Workspace): Promise<{ names: string[]; failures: string[] }> {
  const r = await cliAsync(ws, ['snapshots', '--json']);
  if (r.code !== 0) return { names: [], failures: [`cairn snapshots exited ${r.code ?? r.signal}: ${r.stderr}`] };
  const listed = JSON.parse(r.stdout) as { name: string; file: string; sha256: string }[];
  const failures: string[] = [];
  for (const s of listed) {
    if (!existsSync(s.file)) failures.push(`snapshot ${s.name} is listed but ${s.file} does not exist`);
    else if (createHash('sha256').update(readFileSync(s.file)).digest('hex') !== s.sha256) failures.push(`snapshot ${s.name} is listed but its file does not match its sha256`);
  }
  return { names: listed.map((s) => s.name), failures };
}

/**
 * Even iterations kill `cairn snapshot --name N` and run it again with the same name; odd ones kill
 * the daemon during its start-up snapshot and start it again.
 */
function snapshotCase(label: CrashPoint, offset: number): Case {
  return async (ws, iteration) => {
    const failures: string[] = [];
    let crashed: boolean;
    if ((iteration + offset) % 2 === 0) {
      autoConfig(ws);
      const name = `chaos-${iteration}`;
      const killed = await cliAsync(ws, ['snapshot', '--name', name], { CAIRN_CRASH_AT: label });
      crashed = killed.signal === 'SIGKILL';
      const afterCrash = await listedSnapshots(ws);
      failures.push(...afterCrash.failures);
      if (afterCrash.names.includes(name)) failures.push(`snapshot ${name} is listed although \`cairn snapshot\` was killed before finishing it`);
      const again = await cliAsync(ws, ['snapshot', '--name', name]);
      if (again.code !== 0) failures.push(`\`cairn snapshot --name ${name}\` run again after the crash exited ${again.code ?? again.signal}: ${again.stderr.trim()}`);
      const afterRerun = await listedSnapshots(ws);
      failures.push(...afterRerun.failures);
      if (again.code === 0 && !afterRerun.names.includes(name)) failures.push(`snapshot ${name} was taken again but is not listed`);
    } else {
      autoConfig(ws, { snapshots: { onStart: true } });
      const id = await submit(ws, `${label} during the start-up snapshot`);
      const crashing = ws.startDaemon([], { CAIRN_CRASH_AT: label });
      const exit = await Promise.race([crashing.exited, new Promise<null>((r) => setTimeout(() => r(null), REACH_MS).unref())]);
      if (exit === null) await crashing.kill('SIGKILL');
      crashed = exit?.signal === 'SIGKILL';
      const tasks = await runUntilSettled(ws, SETTLE_MS);
      if (tasks.find((t) => t.id === id)?.state !== 'completed') failures.push(`task ${id} did not complete after the crash`);
      const listed = await listedSnapshots(ws);
      failures.push(...listed.failures);
      if (!listed.names.some((n) => n.startsWith('startup-'))) failures.push('the restarted daemon took no start-up snapshot that is listed');
    }
    return { crashed, failures: [...failures, ...finalChecks(ws)] };
  };
}

/** `cairn import` of the legacy orchestrator database dies after a few rows; run again, it must finish without duplicates. */
const importCase: Case = async (ws, iteration) => {
  ws.writeConfig({ snapshots: { onStart: false }, stages: timedStages(ws) });
  const legacy = path.join(ws.dir, 'legacy', 'orchestrator-tasks.db');
  mkdirSync(path.dirname(legacy), { recursive: true });
  copyFileSync(LEGACY_DB, legacy);
  const source = new Database(legacy, { readonly: true });
  const legacyRequests = (source.prepare('SELECT request FROM tasks ORDER BY id').pluck().all() as string[]).sort();
  source.close();
  const failures: string[] = [];
  const killed = await cliAsync(ws, ['import', legacy, '--json'], {
    CAIRN_CRASH_AT: 'import-between-tasks',
    CAIRN_CRASH_AFTER: String(iteration % (legacyRequests.length - 1)),
  });
  const again = await cliAsync(ws, ['import', legacy, '--json']);
  if (again.code !== 0) failures.push(`\`cairn import\` run again after the crash exited ${again.code ?? again.signal}: ${again.stderr.trim()}`);
  const imported = readTasks(ws.dbFile)
    .map((t) => t.request)
    .sort();
  if (JSON.stringify(imported) !== JSON.stringify(legacyRequests)) {
    failures.push(`after the crash and a second import the database holds ${imported.length} task(s) for ${legacyRequests.length} legacy rows: ${JSON.stringify(imported)}`);
  }
  // Imported rows that were in progress are resumable: a daemon picks them up and runs them to their gates.
  await runUntilSettled(ws, SETTLE_MS);
  return { crashed: killed.signal === 'SIGKILL', failures: [...failures, ...finalChecks(ws)] };
};

const CASES: Record<CrashPoint, Case> = {
  // Every store write counts, from the session's registration on; 2 tasks make well over 20 of them.
  'before-commit': daemonCase('before-commit', (i) => (5 + i * 7) % 20),
  'after-claim': daemonCase('after-claim', (i) => i % 6),
  'after-stage-exit': daemonCase('after-stage-exit', (i) => i % 6),
  'after-result': daemonCase('after-result', (i) => i % 6),
  'after-inbox-insert': inboxCase,
  'snapshot-before-rename': snapshotCase('snapshot-before-rename', 1),
  'snapshot-before-record': snapshotCase('snapshot-before-record', 0),
  'import-between-tasks': importCase,
};

/** Runs `jobs` with at most `limit` at a time. */
async function pooled<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return results;
}

export const scenario: ChaosScenario = {
  name: 'crash points',
  fault: `CAIRN_CRASH_AT=<label> SIGKILLs the daemon or CLI at each of ${CRASH_POINTS.length} named points, 10 times each (quick: once)`,
  target: 'labels covered: all; failures 0',
  async run({ quick, workDir, log }) {
    const perLabel = quick ? 1 : 10;
    const jobs = CRASH_POINTS.flatMap((label) =>
      Array.from({ length: perLabel }, (_, i) => async () => {
        const ws = new Workspace(path.join(workDir, `${label}-${i}`));
        const began = Date.now();
        try {
          const attempt = await CASES[label](ws, i);
          if (!quick || attempt.failures.length) log(`${label} #${i + 1}: ${attempt.crashed ? 'crashed' : 'NOT reached'}, ${attempt.failures.length} failure(s), ${Date.now() - began} ms`);
          return { label, ...attempt };
        } catch (e) {
          return { label, crashed: false, failures: [`${label} #${i + 1} in ${ws.dir}: ${(e as Error).message}`] };
        }
      }),
    );
    const results = await pooled(jobs, quick ? CRASH_POINTS.length : 4);
    const failures = results.flatMap((r) => r.failures.map((f) => `${r.label}: ${f}`));
    const covered = CRASH_POINTS.filter((label) => results.some((r) => r.label === label && r.crashed));
    for (const label of CRASH_POINTS) if (!covered.includes(label)) failures.push(`${label}: no run reached this crash point`);
    const crashes = results.filter((r) => r.crashed).length;
    return {
      iterations: results.length,
      figure: `labels covered ${covered.length}/${CRASH_POINTS.length}, crashes ${crashes}, failures ${failures.length}`,
      held: failures.length === 0,
      failures,
    };
  },
};
