/**
 * Snapshots, restore and backup against real files and processes: a snapshot taken while another
 * process commits is consistent; restore brings back exactly a snapshot's tasks after saving the
 * database as it was; a damaged snapshot or a running daemon is refused; files are private.
 */
import Database from 'better-sqlite3';
import { spawn, spawnSync } from 'node:child_process';
import pg from 'pg';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { openCairn } from '../src/index.js';
import { listSnapshots, snapshotFile } from '../src/snapshots/catalog.js';
import { copyDatabase } from '../src/snapshots/copyDatabase.js';
import { takeSnapshot } from '../src/snapshots/takeSnapshot.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'heartbeat');
const mode = (p: string) => statSync(p).mode & 0o777;

/** Every task row matches its last transition: state, and a version equal to the number of transitions. */
function expectTasksMatchTransitions(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    const rows = db
      .prepare(
        `SELECT t.id, t.state, t.version, last.to_state, last.seq, (SELECT count(*) FROM transitions x WHERE x.task_id = t.id) AS n
         FROM tasks t LEFT JOIN transitions last ON last.task_id = t.id
           AND last.seq = (SELECT max(seq) FROM transitions y WHERE y.task_id = t.id)`,
      )
      .all() as { id: number; state: string; version: number; to_state: string; seq: number; n: number }[];
    const mismatched = rows.filter((r) => r.state !== r.to_state || r.version !== r.n || r.seq !== r.n);
    expect(mismatched).toEqual([]);
    const orphans = db.prepare('SELECT count(*) FROM transitions WHERE task_id NOT IN (SELECT id FROM tasks)').pluck().get();
    expect(orphans).toBe(0);
    return rows.length;
  } finally {
    db.close();
  }
}

function taskIds(file: string): number[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT id FROM tasks ORDER BY id').pluck().all() as number[];
  } finally {
    db.close();
  }
}

/** Submits tasks straight through the engine (faster than a CLI process each); returns their ids. */
async function seedTasks(dbFile: string, requests: string[]): Promise<number[]> {
  const store = openSqliteStore(dbFile, { durability: 'normal' });
  try {
    const engine = new Engine(store, defaultConfig({}, path.dirname(dbFile)));
    const ids: number[] = [];
    for (const request of requests) ids.push((await engine.submit({ request }, 'test')).id);
    return ids;
  } finally {
    await store.close();
  }
}

describe('snapshots', () => {
  it('a snapshot taken while another process commits hundreds of transitions is consistent', async () => {
    const dir = tempDir();
    const dbFile = path.join(dir, 'state', 'cairn.db');
    const dirs = { dbFile, snapshotsDir: path.join(dir, 'state', 'snapshots'), archiveDir: path.join(dir, 'state', 'archive') };
    // A database big enough that a copy takes a while: 1,500 tasks with 6 KiB requests (about 20 MB).
    await seedTasks(dbFile, Array.from({ length: 1500 }, (_, i) => `seed ${i} ${'x'.repeat(6144)}`));

    const child = spawn(process.execPath, [path.join(FIXTURES, 'commitLoop.mjs'), dbFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    const exited = new Promise((r) => child.on('exit', r));
    const committed = () => Number(/committed (\d+)\n(?!.*committed)/s.exec(out)?.[1] ?? 0);
    const transitions = () => {
      const db = new Database(dbFile, { readonly: true });
      try {
        return db.prepare('SELECT count(*) FROM transitions').pluck().get() as number;
      } finally {
        db.close();
      }
    };
    try {
      await waitFor(() => committed() >= 30, { what: 'the other process committing' });
      const taken: { name: string; during: number; tasks: number; ms: number }[] = [];
      for (let i = 0; i < 5; i++) {
        const before = transitions();
        const snapshot = await takeSnapshot({ ...dirs, kind: 'manual', now: Date.now() + i });
        const during = transitions() - before;
        taken.push({ name: snapshot.name, during, tasks: snapshot.tasks, ms: snapshot.ms });
        await waitFor(() => transitions() > before + 30, { what: 'more commits between snapshots' });
      }
      // The other process kept committing throughout: hundreds of transitions over the five copies.
      expect(transitions() - 1500).toBeGreaterThan(300);
      expect(taken.some((t) => t.during > 0)).toBe(true);
      for (const t of taken) {
        const record = listSnapshots(dirs.snapshotsDir).find((r) => r.name === t.name)!;
        const count = expectTasksMatchTransitions(snapshotFile(record));
        // The count recorded with the snapshot is the live count at the moment copied.
        expect(count).toBe(record.tasks);
        expect(count).toBeGreaterThan(1500);
      }
      console.log(`snapshots of ~${(statSync(dbFile).size / 1e6).toFixed(0)} MB while committing:`, taken.map((t) => `${t.ms} ms (${t.during} commits during)`).join(', '));
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  });

  it('a copy of a large database lets its own process go on committing, and holds the moment it began', async () => {
    const dir = tempDir();
    const dbFile = path.join(dir, 'state', 'cairn.db');
    // About 20 MB, so the copy takes several backup steps.
    await seedTasks(dbFile, Array.from({ length: 1500 }, (_, i) => `seed ${i} ${'x'.repeat(6144)}`));
    const store = openSqliteStore(dbFile, { durability: 'normal' });
    try {
      const engine = new Engine(store, defaultConfig({}, path.dirname(dbFile)));
      let pinnedAfter = -1;
      let committed = 0;
      const partial = path.join(dir, 'copy.db.partial');
      const copying = copyDatabase(dbFile, path.join(dir, 'copy.db'), 'normal', { onPinned: () => (pinnedAfter = committed) });
      let isCopying = true;
      void copying.finally(() => (isCopying = false));
      // The daemon's loop, in short: a transition committed on each turn of the event loop, while the
      // copy is seen growing between turns.
      const sizesSeen = new Set<number>();
      while (isCopying) {
        await engine.submit({ request: `during the copy ${committed}` }, 'test');
        committed++;
        if (existsSync(partial)) sizesSeen.add(statSync(partial).size);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const copy = await copying;
      // Copied in one synchronous step, the file went from empty to whole with no turn in between.
      const between = [...sizesSeen].filter((size) => size > 0 && size < copy.sizeBytes);
      expect(between.length).toBeGreaterThanOrEqual(2);
      expect(pinnedAfter).toBe(0);
      expect(copy.tasks).toBe(1500);
      expect(taskIds(copy.file)).toHaveLength(1500);
      expect(taskIds(dbFile)).toHaveLength(1500 + committed);
    } finally {
      await store.close();
    }
  });

  it('a daemon stopped while its startup snapshot is still being written finishes and records it first', async () => {
    const dir = tempDir();
    const dataDir = path.join(dir, 'state');
    // About 40 MB: the copy takes several turns of the event loop after start() has returned.
    await seedTasks(path.join(dataDir, 'cairn.db'), Array.from({ length: 3000 }, (_, i) => `seed ${i} ${'x'.repeat(6144)}`));
    const cairn = await openCairn({ dataDir, config: { views: false } });
    await cairn.start({ pollMs: 50 });
    await cairn.stop();
    const snapshotsDir = path.join(dataDir, 'snapshots');
    expect(listSnapshots(snapshotsDir).map((r) => [r.kind, r.tasks])).toEqual([['startup', 3000]]);
    expect(readdirSync(snapshotsDir).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });

  it('restore brings back exactly the snapshot\'s tasks; the pre-restore snapshot holds the others', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const early = await seedTasks(ws.dbFile, ['one', 'two', 'three']);
    const snap = ws.cli(['snapshot', '--name', 'before_more', '--json']);
    expect(snap.code, snap.stderr).toBe(0);
    expect(JSON.parse(snap.stdout)).toMatchObject({ name: 'before_more', kind: 'named', tasks: 3 });
    const later = await seedTasks(ws.dbFile, ['four', 'five']);
    expect(ws.cli(['cancel', String(early[0])]).code).toBe(0);

    const r = ws.cli(['restore', 'before_more', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.restored.name).toBe('before_more');
    expect(report.pre_restore.kind).toBe('pre-restore');
    expect(ws.json<any[]>(['list']).map((t) => [t.id, t.state])).toEqual(early.map((id) => [id, 'pending']));
    expect(taskIds(report.pre_restore.file)).toEqual([...early, ...later]);

    // The restore can be undone with the pre-restore snapshot.
    const undo = ws.cli(['restore', report.pre_restore.name]);
    expect(undo.code, undo.stderr).toBe(0);
    expect(taskIds(ws.dbFile)).toEqual([...early, ...later]);
    expect(ws.show(early[0]).state).toBe('cancelled');
    expectTasksMatchTransitions(ws.dbFile);

    // `--latest` is the newest snapshot: now the pre-restore taken by the undo.
    expect(ws.json<any[]>(['snapshots']).map((s) => s.kind)).toEqual(['pre-restore', 'pre-restore', 'named']);
    expect(ws.cli(['restore', '--latest']).code).toBe(0);
    expect(taskIds(ws.dbFile)).toEqual(early);
  });

  it('a snapshot with flipped bytes is refused by its checksum, and nothing changes', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    await seedTasks(ws.dbFile, ['one']);
    expect(ws.cli(['snapshot', '--name', 'good']).code).toBe(0);
    await seedTasks(ws.dbFile, ['two']);
    const file = path.join(ws.dataDir, 'snapshots', 'good.db');
    const bytes = readFileSync(file);
    for (let i = 0; i < 16; i++) bytes[Math.floor(bytes.length / 2) + i] ^= 0xff;
    writeFileSync(file, bytes);

    const r = ws.cli(['restore', 'good']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/snapshot good failed its checks, so nothing was restored: its sha256 is \w+…, not the \w+… recorded/);
    expect(taskIds(ws.dbFile)).toEqual([1, 2]);
    expect(ws.json<any[]>(['snapshots']).map((s) => s.kind)).toEqual(['named']); // no pre-restore taken
  });

  it('restore is refused while a daemon runs on the data directory, and names it', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/cairn daemon started/);
      const startup = await daemon.waitForLog(/startup snapshot startup-\S+ taken/);
      expect(startup.snapshot).toMatch(/^startup-/);
      const r = ws.cli(['restore', '--latest']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`a daemon is running on ${ws.dataDir} (session `);
      expect(r.stderr).toContain(`pid ${daemon.pid}`);
      expect(r.stderr).toMatch(/Stop it first/);
    } finally {
      await daemon.kill('SIGTERM');
    }
    expect(ws.cli(['restore', '--latest']).code).toBe(0);
  });

  it('snapshots and backups are private; names are checked; --name cannot be reused', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    await seedTasks(ws.dbFile, ['one']);
    expect(ws.cli(['snapshot', '--name', 'mine']).code).toBe(0);
    const again = ws.cli(['snapshot', '--name', 'mine']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/a snapshot called "mine" already exists/);
    const bad = ws.cli(['snapshot', '--name', '../escape']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/"..\/escape" cannot name a snapshot/);
    const manual = ws.json(['snapshot']);
    expect(manual.kind).toBe('manual');

    const snapshotsDir = path.join(ws.dataDir, 'snapshots');
    expect(mode(snapshotsDir)).toBe(0o700);
    for (const f of readdirSync(snapshotsDir)) expect(mode(path.join(snapshotsDir, f)), f).toBe(0o600);

    const backup = ws.json(['backup']);
    expect(path.dirname(backup.file)).toBe(path.join(ws.dataDir, 'backups'));
    expect(mode(backup.file)).toBe(0o600);
    expect(mode(path.dirname(backup.file))).toBe(0o700);
    expect(taskIds(backup.file)).toEqual([1]);
    expect(backup.tasks).toBe(1);

    const target = path.join(ws.dir, 'elsewhere', 'copy.db');
    const explicit = ws.json(['backup', target]);
    expect(explicit.file).toBe(target);
    expect(taskIds(target)).toEqual([1]);
    expect(mode(target)).toBe(0o600);
    const refused = ws.cli(['backup', target]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already exists; cairn will not overwrite it/);
  });

  it('with PostgreSQL, snapshot/restore say they are SQLite features, and backup runs pg_dump without the password in argv', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ store: { kind: 'postgres', url: 'postgres://cairn:s3cret@db.example:5433/cairn?sslmode=require' } });
    for (const args of [['snapshot'], ['snapshots'], ['restore', '--latest']]) {
      const r = ws.cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/is a SQLite feature, and this cairn uses PostgreSQL.*`cairn backup PATH` runs pg_dump/);
    }

    const bin = path.join(ws.dir, 'bin');
    const record = path.join(ws.dir, 'pg_dump.record');
    const fake = path.join(bin, 'pg_dump');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      fake,
      `#!/usr/bin/env bash\nprintf '%s\\n' "$@" > ${record}\nenv | grep '^PG' | sort >> ${record}\nfor a in "$@"; do case "$a" in --file=*) echo dump > "\${a#--file=}";; esac; done\n`,
    );
    chmodSync(fake, 0o755);
    const target = path.join(ws.dir, 'db.dump');
    const r = ws.cli(['backup', target, '--json'], { PATH: `${bin}:${process.env.PATH}` });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ file: target, format: 'pg_dump' });
    const seen = readFileSync(record, 'utf8');
    expect(seen).toContain('--format=custom');
    expect(seen).toContain('PGPASSWORD=s3cret');
    expect(seen).toContain('PGHOST=db.example');
    expect(seen).toContain('PGPORT=5433');
    expect(seen).toContain('PGSSLMODE=require');
    const argv = seen.split('\n').filter((l) => l.startsWith('--'));
    expect(argv.join(' ')).not.toContain('s3cret');
    expect(mode(target)).toBe(0o600);

    expect(argv).toContain('--schema=public');

    const missing = ws.cli(['backup', path.join(ws.dir, 'other.dump')], { PATH: '/nonexistent' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/pg_dump is not on PATH/);
    expect(existsSync(path.join(ws.dir, 'other.dump'))).toBe(false);
  });

  it('with PostgreSQL, backup is a real pg_dump of the installation\'s schema only', async () => {
    const url = process.env.CAIRN_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
    const [mine, other] = [`cairn_bk_${process.pid}_a`, `cairn_bk_${process.pid}_b`];
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (const schema of [mine, other]) {
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.tasks (id int PRIMARY KEY, request text)`);
        await client.query(`INSERT INTO ${schema}.tasks VALUES (1, 'in ${schema}')`);
      }
      const ws = new Workspace(tempDir());
      ws.writeConfig({ store: { kind: 'postgres', url, schema: mine } });
      const target = path.join(ws.dir, 'cairn.dump');
      const backup = ws.json(['backup', target]);
      expect(backup).toMatchObject({ file: target, format: 'pg_dump' });
      expect(readFileSync(target).subarray(0, 5).toString()).toBe('PGDMP');
      const listing = spawnSync('pg_restore', ['--list', target], { encoding: 'utf8' });
      expect(listing.status, listing.stderr).toBe(0);
      expect(listing.stdout).toMatch(new RegExp(`TABLE ${mine} tasks`));
      expect(listing.stdout).not.toContain(other);
    } finally {
      await client.query(`DROP SCHEMA IF EXISTS ${mine} CASCADE; DROP SCHEMA IF EXISTS ${other} CASCADE`);
      await client.end();
    }
  });

  it('snapshots.onStart: false takes no startup snapshot', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ snapshots: { onStart: false, cron: '0 0 1 1 *' } });
    const daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/cairn daemon started/);
    } finally {
      await daemon.kill('SIGTERM');
    }
    expect(daemon.lines.some((l) => /startup snapshot/.test(l.msg))).toBe(false);
    expect(ws.json<any[]>(['snapshots'])).toEqual([]);
  });
});
