/**
 * The heartbeat cycle: a failing part is logged and recorded, never stops the others or the daemon,
 * and shows in `cairn status`; stuck stages and waiting approvals are flagged; the restore drill
 * catches a damaged snapshot; the cycle command's tasks appear and its garbage lines are skipped.
 * Time is injected wherever it matters; processes are real.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ConfigFile } from '../src/config.js';
import { loadConfig } from '../src/loadConfig.js';
import { Heartbeat } from '../src/daemon/heartbeat.js';
import { Engine } from '../src/engine/engine.js';
import { listSnapshots, snapshotFile } from '../src/snapshots/catalog.js';
import { takeSnapshot } from '../src/snapshots/takeSnapshot.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { Workspace } from './helpers/cairnProcess.js';
import { succeedNextStage } from './helpers/driveTask.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const CYCLE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'heartbeat', 'cycle.sh');
const MIN = 60_000;
const HOUR = 60 * MIN;

/** A heartbeat in this process on the workspace's database, with an injected clock and its log captured. */
async function inProcess(ws: Workspace, start: number) {
  const config = await loadConfig({ file: path.join(ws.dir, 'cairn.config.json'), cwd: ws.dir, env: {} });
  const store = openSqliteStore(ws.dbFile);
  let now = start;
  const clock = () => now;
  const engine = new Engine(store, config, clock);
  const lines: any[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const heartbeat = new Heartbeat({ store, config, engine, logger, now: clock });
  return { config, store, engine, heartbeat, lines, setNow: (t: number) => (now = t), close: () => store.close() };
}

describe('heartbeat', () => {
  it('a failing part is logged, recorded and shown in status, the other parts still run, and it clears once fixed', () => {
    const ws = new Workspace(tempDir());
    const record = path.join(ws.dir, 'cycle-input');
    ws.writeConfig({ cycle: { run: [CYCLE], env: { CYCLE_RECORD: record } } });
    ws.submit('before');
    // state/snapshots is a file: every part that lists or writes snapshots fails.
    writeFileSync(path.join(ws.dataDir, 'snapshots'), 'not a directory');

    const r = ws.cli(['heartbeat', '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/heartbeat parts snapshot \(.*\), retention \(.*\), drill \(.*\) failed; the other parts ran/);
    const report = JSON.parse(r.stdout);
    const byName = Object.fromEntries(report.parts.map((p: any) => [p.name, p]));
    expect(byName.snapshot).toMatchObject({ ok: false, error: expect.stringMatching(/snapshots/) });
    expect(byName.sessions.ok).toBe(true);
    expect(byName.flags.ok).toBe(true);
    expect(byName.cycle).toMatchObject({ ok: true, detail: { submitted: [2, 3] } });
    // The log names the failing part (stderr: `cairn heartbeat` keeps stdout for its report).
    expect(r.stderr).toMatch(/"msg":"heartbeat part snapshot failed: .*the daemon carries on"/);

    const status = ws.json(['status']);
    expect(status.heartbeat.last_cycle).toMatchObject({ ok: false, failed_parts: expect.arrayContaining([expect.objectContaining({ name: 'snapshot' })]) });
    expect(status.flags.filter((f: any) => f.kind === 'heartbeat_failed').map((f: any) => f.message)).toEqual(
      expect.arrayContaining([expect.stringMatching(/the heartbeat's snapshot part failed at .*: /)]),
    );

    rmSync(path.join(ws.dataDir, 'snapshots'));
    const fixed = ws.cli(['heartbeat']);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fixed.stdout).toMatch(/snapshot\s+ok/);
    const after = ws.json(['status']);
    expect(after.heartbeat.last_cycle.ok).toBe(true);
    expect(after.flags.map((f: any) => f.kind)).not.toContain('heartbeat_failed');
    // Taken before this cycle's command added two more: the first task and the first cycle's two.
    expect(after.snapshots.last).toMatchObject({ kind: 'hourly', tasks: 3 });
    expect(after.counts).toEqual({ pending: 5 });
  });

  it('a failing part never stops the daemon: its heartbeats go on and tasks complete', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ approvals: { plan: 'auto', implementation: 'auto' }, snapshots: { onStart: false } });
    ws.createDataDir();
    writeFileSync(path.join(ws.dataDir, 'snapshots'), 'not a directory');
    const daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/heartbeat part snapshot failed: .*the daemon carries on/);
      const id = ws.submit('still works');
      await waitFor(() => ws.show(id).state === 'completed', { what: 'completed despite the failing part' });
      const seen = daemon.lines.filter((l) => /heartbeat part snapshot failed/.test(l.msg)).length;
      await waitFor(() => daemon.lines.filter((l) => /heartbeat part snapshot failed/.test(l.msg)).length > seen, { what: 'another heartbeat' });
    } finally {
      expect(await daemon.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    }
  });

  it('flags a stage past its timeout and an approval waiting too long, in the log once and in status', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({
      approvals: { plan: 'manual', implementation: 'auto' },
      heartbeat: { cron: '*/1 * * * * *', staleAfter: '30s', approvalReminderAfter: '1h' },
      stages: { plan: { run: ['/bin/true'], timeout: '1m' } },
    });
    ws.createDataDir();
    const t0 = Date.now() - 3 * HOUR;
    const h = await inProcess(ws, t0);
    try {
      const session = await h.store.createSession({ id: 'frozen-daemon', pid: process.pid, host: (await import('node:os')).hostname(), at: t0 });
      const waiting = (await h.engine.submit({ request: 'waits for a human' }, 'test')).id;
      await h.engine.start(waiting, 'test');
      await succeedNextStage(h.engine, h.store, waiting, session.id);
      const stuck = (await h.engine.submit({ request: 'hangs in plan' }, 'test')).id;
      await h.engine.start(stuck, 'test');
      expect(await h.store.claimRun(stuck, session.id, t0, 60_000)).not.toBeNull();

      // 30 s later nothing is wrong yet.
      h.setNow(t0 + 30_000);
      await h.store.heartbeatSession(session.id, t0 + 30_000, 60_000);
      expect((await h.heartbeat.runCycle())!.flags).toEqual([]);

      // 2 h later: the plan is far past its 1 min timeout, the approval past its 1 h reminder.
      h.setNow(t0 + 2 * HOUR);
      await h.store.heartbeatSession(session.id, t0 + 2 * HOUR, 60_000);
      const report = (await h.heartbeat.runCycle())!;
      expect(report.flags.map((f) => [f.kind, f.task])).toEqual([
        ['stuck', stuck],
        ['approval_waiting', waiting],
      ]);
      const logged = () => h.lines.filter((l) => /past its timeout|has waited/.test(l.msg)).map((l) => l.msg);
      expect(logged()).toEqual([
        `task ${stuck} has been in its plan stage (attempt 1) for 2 h, past its timeout of 60 s; session frozen-daemon may be hung: check that daemon, or \`cairn cancel ${stuck}\``,
        `task ${waiting} has waited 2 h at plan_awaiting_approval; \`cairn approve ${waiting}\` or \`cairn reject ${waiting} --reason …\``,
      ]);
      // A flag is logged when it appears, not on every cycle while it lasts.
      h.setNow(t0 + 2 * HOUR + MIN);
      await h.store.heartbeatSession(session.id, t0 + 2 * HOUR + MIN, 60_000);
      expect((await h.heartbeat.runCycle())!.flags).toHaveLength(2);
      expect(logged()).toHaveLength(2);

      // `cairn status` (real time, 3 h after t0) shows both.
      await h.store.heartbeatSession(session.id, Date.now(), 60_000);
      const status = ws.json(['status']);
      expect(status.flags.filter((f: any) => ['stuck', 'approval_waiting'].includes(f.kind)).map((f: any) => [f.kind, f.task])).toEqual([
        ['stuck', stuck],
        ['approval_waiting', waiting],
      ]);
    } finally {
      await h.close();
    }
  });

  it('the restore drill passes on a good snapshot and raises a flag on a damaged one', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ snapshots: { drillEvery: '1h' } });
    ws.submit('one');
    // 10:30 local: the hourly snapshot of 10:00 was taken, so none is due; only the drill runs.
    const day = new Date();
    const at = (h: number, m: number) => new Date(day.getFullYear(), day.getMonth(), day.getDate() - 1, h, m).getTime();
    const h = await inProcess(ws, at(10, 30));
    try {
      const dirs = { dbFile: ws.dbFile, snapshotsDir: path.join(ws.dataDir, 'snapshots'), archiveDir: path.join(ws.dataDir, 'archive') };
      await takeSnapshot({ ...dirs, kind: 'hourly', now: at(10, 0) });
      const good = (await h.heartbeat.runCycle())!;
      expect(good.parts.find((p) => p.name === 'snapshot')!.skipped).toMatch(/^not due/);
      expect(good.parts.find((p) => p.name === 'drill')!.detail).toMatchObject({ ok: true });
      expect(ws.json(['status']).snapshots.last_drill).toMatchObject({ ok: true });

      // Damage the newest snapshot; the next drill is due an hour later.
      await takeSnapshot({ ...dirs, kind: 'hourly', now: at(11, 0) });
      const newest = listSnapshots(dirs.snapshotsDir)[0];
      const bytes = readFileSync(snapshotFile(newest));
      for (let i = 0; i < 64; i++) bytes[4096 + i] ^= 0x5a;
      writeFileSync(snapshotFile(newest), bytes);
      h.setNow(at(11, 31));
      const bad = (await h.heartbeat.runCycle())!;
      expect(bad.ok).toBe(true); // the drill itself worked: it found a bad snapshot
      expect(bad.flags.map((f) => f.kind)).toEqual(['drill_failed']);
      expect(h.lines.some((l) => l.level === 50 && l.msg.startsWith(`restore drill FAILED: snapshot ${newest.name} would not restore: its sha256 is`))).toBe(true);

      const status = ws.json(['status']);
      expect(status.snapshots.last_drill).toMatchObject({ ok: false, snapshot: newest.name });
      expect(status.flags.find((f: any) => f.kind === 'drill_failed').message).toMatch(new RegExp(`snapshot ${newest.name} would not restore: its sha256`));
    } finally {
      await h.close();
    }
  });

  it('a slow cycle command does not stop the session\'s renewal, and holds the upkeep against `cairn heartbeat`', async () => {
    const ws = new Workspace(tempDir());
    const record = path.join(ws.dir, 'cycle-input');
    // The cycle command runs until this file exists: held for as long as the checks take, however slow the machine.
    const release = path.join(ws.dir, 'cycle-release');
    ws.writeConfig({
      heartbeat: { cron: '*/1 * * * * *', staleAfter: '2s' },
      snapshots: { onStart: false },
      cycle: { run: [CYCLE], env: { CYCLE_RECORD: record, CYCLE_RELEASE: release } },
    });
    const daemon = ws.startDaemon();
    try {
      const started = await daemon.waitForLog(/cairn daemon started/);
      await waitFor(() => existsSync(record), { what: 'the cycle command started' });
      const cycleStartedAt = Date.now();
      // While the cycle sleeps, the session is renewed past staleAfter (2 s): a renewal later than that is the signal.
      await waitFor(() => Date.parse(ws.json(['status']).sessions[0].last_heartbeat_at) > cycleStartedAt + 2000, {
        what: 'a session renewal more than staleAfter after the cycle command started',
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      const other = ws.json(['heartbeat']);
      expect(other.parts.find((p: any) => p.name === 'sessions').detail).toEqual({ marked: [] });
      expect(other.parts.find((p: any) => p.name === 'cycle').skipped).toBe(`upkeep is not this cycle's to do (held by ${started.session})`);
      writeFileSync(release, '');
      await daemon.waitForLog(/cycle: submitted task 2/);
      expect(daemon.lines.some((l) => /marked stale by another process/.test(l.msg))).toBe(false);
      expect(ws.json(['status']).sessions.map((s: any) => s.id)).toEqual([started.session]);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('a bad cron expression or drill interval is a config error naming its key', () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ snapshots: { cron: 'every hour' } });
    const cron = ws.cli(['heartbeat']);
    expect(cron.code).toBe(2);
    expect(cron.stderr).toMatch(/snapshots\.cron: "every hour" is not a cron expression \(.*\); write it like "0 \* \* \* \*"/);
    ws.writeConfig({ snapshots: { drillEvery: 'daily' } });
    const drill = ws.cli(['status']);
    expect(drill.code).toBe(2);
    expect(drill.stderr).toMatch(/snapshots\.drillEvery: "daily" is not a duration/);
  });

  it('the cycle command runs every N cycles; its tasks appear, its garbage lines are skipped, a failing exit is reported', async () => {
    const ws = new Workspace(tempDir());
    const record = path.join(ws.dir, 'cycle-input');
    ws.writeConfig({ cycle: { run: [CYCLE], env: { CYCLE_RECORD: record }, every: 2 } });
    const first = ws.json(['heartbeat']);
    expect(first.parts.find((p: any) => p.name === 'cycle').skipped).toBe('runs every 2 cycles; this is 1');
    const second = ws.json(['heartbeat']);
    expect(second.parts.find((p: any) => p.name === 'cycle')).toMatchObject({ ok: true, detail: { submitted: [1, 2], skipped: 5 } });
    const third = ws.json(['heartbeat']);
    expect(third.parts.find((p: any) => p.name === 'cycle').skipped).toBe('runs every 2 cycles; this is 1');

    const tasks = ws.json<any[]>(['list']);
    expect(tasks.map((t) => [t.request, t.priority, t.tags])).toEqual([
      ['cycle task A', 'high', ['auto']],
      ['cycle task C', 'medium', []],
    ]);
    expect(ws.history(1)[0].actor).toBe('cycle');
    // The command got a summary of the queue on stdin.
    expect(JSON.parse(readFileSync(record, 'utf8').trim())).toEqual({ at: expect.any(String), counts: {} });

    // Driven by a daemon, with a failing exit: its valid lines still become tasks, and the failure is reported.
    ws.writeConfig({ snapshots: { onStart: false }, cycle: { run: [CYCLE], env: { CYCLE_RECORD: record, CYCLE_EXIT: '3' } } });
    const daemon = ws.startDaemon();
    try {
      await daemon.waitForLog(/heartbeat part cycle failed: the cycle command failed: .*exited with code 3/);
      await daemon.waitForLog(/cycle: line 2 skipped: not JSON: this is not json at all/);
      await daemon.waitForLog(/cycle: line 7 skipped: task 999999 does not exist/);
      await waitFor(() => ws.json<any[]>(['list']).length >= 4, { what: 'the daemon\'s cycle tasks' });
    } finally {
      expect(await daemon.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    }
    expect(ws.json(['status']).flags.map((f: any) => f.kind)).toContain('heartbeat_failed');
  });
});
