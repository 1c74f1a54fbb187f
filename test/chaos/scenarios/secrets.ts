/**
 * Secrets stay where they belong. Canaries sit in the daemon's environment, in config (a stage's and
 * the cycle command's `env`), in a store URL's password, and in task text; tasks run (one stage fails
 * once, so error paths log too), a snapshot is taken, the PostgreSQL store is used and missed. Then
 * every byte cairn wrote or printed is searched.
 *
 * Intended places for the task-text canary, and nowhere else:
 *   - the database (cairn.db, its -wal) in tasks.request, tasks.snapshot (the machine context),
 *     transitions.event of the SUBMIT event and checkpoints.snapshot, and byte copies of that database
 *     (state/snapshots/, state/archive/);
 *   - the views of the task row (state/tasks/<id>.state, state/status/*.md, state/current.state), caches of it;
 *   - the stage program's stdin (what the fixture stage saves under records/input-*.json).
 * Environment and config canaries are intended nowhere: not in logs, files, the database or output.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Workspace, type CliResult } from '../../helpers/cairnProcess.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { waitAllTerminal } from '../waitFor.js';

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    const st = statSync(p);
    return st.isDirectory() ? walk(p) : st.isFile() ? [p] : [];
  });
}

/** The database columns (table.column) holding `needle` in any row, read through SQLite, not bytes. */
function columnsHolding(dbFile: string, needle: string): string[] {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const found: string[] = [];
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[];
    for (const table of tables) {
      for (const col of db.prepare(`SELECT name FROM pragma_table_info(?)`).pluck().all(table) as string[]) {
        const rows = db.prepare(`SELECT ${table === 'transitions' ? 'event_type' : 'NULL'} AS kind FROM "${table}" WHERE instr(CAST("${col}" AS TEXT), ?) > 0`).all(needle) as { kind: string | null }[];
        for (const kind of new Set(rows.map((r) => r.kind))) found.push(kind ? `${table}.${col} (${kind})` : `${table}.${col}`);
      }
    }
    return found;
  } finally {
    db.close();
  }
}

const INTENDED_COLUMNS = new Set(['tasks.request', 'tasks.snapshot', 'transitions.event (SUBMIT)', 'checkpoints.snapshot']);

export const scenario: ChaosScenario = {
  name: 'secrets',
  fault: 'canary secrets in env, config, a store URL password and task text; tasks run, one fails once; snapshot; postgres used and unreachable',
  target: 'leaks 0: env/config canaries nowhere, task text only where the request is stored',
  async run({ quick, workDir, log }) {
    const tag = randomBytes(6).toString('hex');
    const envSecrets: Record<string, string> = {
      CAIRN_TEST_SECRET_TOKEN: `canary-token-${tag}`,
      AWS_SECRET_ACCESS_KEY: `canary-aws-${tag}`,
      DATABASE_PASSWORD: `canary-dbpw-${tag}`,
    };
    const configSecret = `canary-config-${tag}`;
    const urlPassword = `canary-urlpw-${tag}`;
    const taskCanary = `canary-tasktext-${tag}`;
    const secretsNowhere = [...Object.values(envSecrets), configSecret, urlPassword];
    const ws = new Workspace(workDir);
    const cycleScript = path.join(workDir, 'cycle.sh');
    writeFileSync(cycleScript, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    ws.writeConfig(
      {
        approvals: { plan: 'auto', implementation: 'auto' },
        cycle: { run: [cycleScript], env: { CYCLE_API_KEY: configSecret } },
      },
      { plan: { API_TOKEN: configSecret }, implement: { FAIL_ATTEMPTS: '1' } },
    );
    const outputs: { what: string; text: string }[] = [];
    const cli = (args: string[], env: NodeJS.ProcessEnv = {}): CliResult => {
      const r = ws.cli(args, { ...envSecrets, ...env });
      outputs.push({ what: `cairn ${args.join(' ').slice(0, 60)}`, text: r.stdout + r.stderr });
      return r;
    };

    const count = quick ? 3 : 12;
    for (let i = 0; i < count; i++) cli(['submit', `task ${i} carries ${taskCanary} in its text`, '--json']);
    const daemon = ws.startDaemon([], envSecrets);
    try {
      await daemon.waitForLog(/cairn daemon started/);
      await waitAllTerminal(ws.dbFile, quick ? 30_000 : 120_000, count);
      const verbs = quick ? [['show', '2', '--json'], ['status']] : [['list', '--json'], ['show', '2', '--json'], ['history', '2', '--json'], ['status', '--json'], ['snapshots', '--json'], ['show', '2'], ['status']];
      for (const verb of verbs) cli(verb);
      const snap = cli(['snapshot', '--name', 'secrets']);
      if (snap.code !== 0) throw new Error(`cairn snapshot exited ${snap.code}: ${snap.stderr}`);
    } finally {
      await daemon.kill('SIGTERM');
      outputs.push({ what: 'the daemon log', text: daemon.lines.map((l) => JSON.stringify(l)).join('\n') + daemon.stderr });
    }

    // Before the PostgreSQL part: its stages append to the same ledger, their results go to PostgreSQL.
    const inv = checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger'));

    // A password in a store URL: a server that refuses the user, one that is not there, a URL that is not one.
    const pgRefused = `postgres://u_${tag}:${urlPassword}@127.0.0.1:5432/test`;
    const pgAbsent = `postgres://u:${urlPassword}@127.0.0.1:1/test`;
    // Passwords are not always URL-encoded: a raw `/` or `#` makes the text no URL at all, and then it is printed.
    const notUrl = `postgres//u:${urlPassword}@127.0.0.1/test`;
    const slashInPassword = `postgres://u:${urlPassword}/x#y@127.0.0.1:1/test`;
    for (const url of [pgRefused, pgAbsent, notUrl, slashInPassword]) {
      const r = cli(['list', '--json'], { CAIRN_DATABASE_URL: url });
      if (r.code === 0) log(`cairn list with ${url.replace(urlPassword, '***')} unexpectedly succeeded`);
      if (!quick) cli(['list', '--json', '--database', url]);
    }
    cli(['migrate-store', '--from', `sqlite:${ws.dbFile}`, '--to', `mysql://u:${urlPassword}/x@127.0.0.1/db`]);
    // A daemon that uses PostgreSQL for a moment with a password in its URL (the server may not check it).
    const schema = `cairn_tsecrets_${process.pid}`;
    const pgUsed = `postgres://postgres:${urlPassword}@127.0.0.1:5432/test?schema=${schema}`;
    const pgDaemon = ws.startDaemon(['--no-resume'], { ...envSecrets, CAIRN_DATABASE_URL: pgUsed });
    let pgRan = false;
    try {
      await pgDaemon.waitForLog(/cairn daemon started/, 15_000);
      pgRan = true;
      cli(['submit', `postgres task with ${taskCanary}`, '--json'], { CAIRN_DATABASE_URL: pgUsed });
      cli(['status', '--json'], { CAIRN_DATABASE_URL: pgUsed });
    } catch {
      log('no PostgreSQL at 127.0.0.1:5432: only the failing-connection paths were checked');
    } finally {
      await pgDaemon.kill('SIGTERM');
      outputs.push({ what: 'the postgres daemon log', text: pgDaemon.lines.map((l) => JSON.stringify(l)).join('\n') + pgDaemon.stderr });
    }
    if (pgRan) await dropSchema(schema);

    const leaks: string[] = [];
    for (const o of outputs) {
      for (const s of secretsNowhere) if (o.text.includes(s)) leaks.push(`${o.what} printed ${s}`);
      if (o.text.includes(taskCanary) && !/^cairn (show|history|list)/.test(o.what)) leaks.push(`${o.what} printed the task text`);
    }
    const dbCopies = /^(cairn\.db(-wal|-shm)?|.*\.db)$/;
    const files = [...walk(ws.dataDir), ...walk(ws.recordDir)];
    for (const file of files) {
      const bytes = readFileSync(file);
      const rel = path.relative(workDir, file);
      for (const s of secretsNowhere) if (bytes.includes(s)) leaks.push(`${rel} holds ${s}`);
      if (!bytes.includes(taskCanary)) continue;
      const intended =
        (dbCopies.test(path.basename(file)) && (rel.startsWith('state/cairn.db') || rel.startsWith('state/snapshots/') || rel.startsWith('state/archive/'))) ||
        /^state\/(tasks\/\d+\.state|status\/[\w-]+\.md|current\.state)$/.test(rel) ||
        /^records\/input-\d+-\w+-\d+\.json$/.test(rel);
      if (!intended) leaks.push(`${rel} holds the task text`);
    }
    for (const col of columnsHolding(ws.dbFile, taskCanary)) if (!INTENDED_COLUMNS.has(col)) leaks.push(`the database column ${col} holds the task text`);
    for (const s of secretsNowhere) for (const col of columnsHolding(ws.dbFile, s)) leaks.push(`the database column ${col} holds ${s}`);
    log(`searched ${outputs.length} outputs and ${files.length} files for ${secretsNowhere.length + 1} canaries`);

    const failures = [...leaks, ...inv.violations];
    return {
      iterations: count,
      figure: `leaks ${leaks.length} (${outputs.length} outputs, ${files.length} files searched; postgres daemon ${pgRan ? 'ran' : 'unreachable'}); re-executions ${inv.reExecutions}`,
      held: failures.length === 0,
      failures,
    };
  },
};

async function dropSchema(schema: string): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
