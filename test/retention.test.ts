/**
 * Snapshot retention and its schedule, with an injected clock: 60 simulated days of hourly heartbeat
 * cycles take real snapshots, and exactly the expected set survives. Cron arithmetic is checked on
 * its own. No sleeps: the clock is a variable.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig, type ConfigFile } from '../src/config.js';
import { nextTick, previousTick } from '../src/process/cronTicks.js';
import { Heartbeat, type HeartbeatHost } from '../src/daemon/heartbeat.js';
import { Engine } from '../src/engine/engine.js';
import { listSnapshots, timestampedName } from '../src/snapshots/catalog.js';
import { applyRetention, planRetention } from '../src/snapshots/retention.js';
import { takeSnapshot } from '../src/snapshots/takeSnapshot.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { tempDir } from './helpers/tmp.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 0, 5); // a Monday, 00:00 UTC

const shmDirs: string[] = [];
afterEach(() => {
  for (const dir of shmDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * A directory in memory when the system has one (/dev/shm): these tests are about which files survive,
 * and 1,440 real snapshots each fsync several times; on tmpfs an fsync costs nothing.
 */
function fastDir(): string {
  if (!existsSync('/dev/shm')) return tempDir();
  try {
    const dir = mkdtempSync('/dev/shm/cairn-retention-');
    shmDirs.push(dir);
    return dir;
  } catch {
    return tempDir();
  }
}

function setup(config: ConfigFile, host?: HeartbeatHost) {
  const dir = fastDir();
  const cfg = defaultConfig({ dataDir: path.join(dir, 'state'), ...config }, dir);
  const store = openSqliteStore(path.join(cfg.dataDir, 'cairn.db'), { durability: 'normal' });
  let now = T0;
  const clock = () => now;
  const engine = new Engine(store, cfg, clock);
  const heartbeat = new Heartbeat({ store, config: cfg, engine, logger: pino({ level: 'silent' }), now: clock, host });
  return {
    cfg,
    store,
    engine,
    heartbeat,
    setNow: (t: number) => (now = t),
    snapshotsDir: path.join(cfg.dataDir, 'snapshots'),
    archiveDir: path.join(cfg.dataDir, 'archive'),
  };
}

const names = (dir: string, ext: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(ext)).map((f) => f.slice(0, -ext.length)).sort() : []);
const hourly = (i: number) => timestampedName('hourly', T0 + i * HOUR);

describe('retention with an injected clock', () => {
  it('60 days of hourly heartbeats: the newest 24 and one per day for 30 days survive; the rest is archived', async () => {
    const t = setup({ snapshots: { keepHourly: 24, keepDaily: 30, archive: true } });
    await t.engine.submit({ request: 'something to copy' }, 'test');
    const started = performance.now();
    for (let i = 0; i < 60 * 24; i++) {
      t.setNow(T0 + i * HOUR);
      const report = (await t.heartbeat.runCycle())!;
      const snapshot = report.parts.find((p) => p.name === 'snapshot')!;
      // Every simulated hour the cron fires once, and exactly one hourly snapshot is taken.
      expect(snapshot.skipped, `hour ${i}`).toBeUndefined();
      expect(report.ok, JSON.stringify(report.parts.filter((p) => !p.ok))).toBe(true);
    }
    const ms = performance.now() - started;
    // The last cycle ran at day 59, 23:00 UTC. Newest 24: hours 1416..1439. Newest of each of the last 30
    // days (59 back to 30): hour 24·d + 23; day 59's is already among the newest 24.
    const expected = new Set<number>();
    for (let i = 1416; i < 1440; i++) expected.add(i);
    for (let d = 30; d < 60; d++) expected.add(24 * d + 23);
    expect(expected.size).toBe(53);
    const keptNames = [...expected].map(hourly).sort();
    expect(names(t.snapshotsDir, '.db')).toEqual(keptNames);
    expect(names(t.snapshotsDir, '.json')).toEqual(keptNames);
    const archived = Array.from({ length: 1440 }, (_, i) => i).filter((i) => !expected.has(i)).map(hourly).sort();
    expect(names(t.archiveDir, '.db')).toEqual(archived);
    expect(names(t.archiveDir, '.json')).toEqual(archived);
    // Archived snapshots keep their records: still listed, and marked archived.
    expect(listSnapshots(t.archiveDir, true).every((r) => r.isArchived && r.kind === 'hourly')).toBe(true);
    console.log(`60 simulated days (1,440 heartbeat cycles with a snapshot each) in ${(ms / 1000).toFixed(1)} s`);
    await t.store.close();
  }, 120_000);

  it('archive: false deletes what retention does not keep; user snapshots are never touched; the newest always stays', async () => {
    const t = setup({ durability: 'normal', snapshots: { keepHourly: 5, keepDaily: 2, archive: false, drillEvery: null } });
    await takeSnapshot({ dbFile: t.store.location, snapshotsDir: t.snapshotsDir, archiveDir: t.archiveDir, kind: 'named', name: 'keep_me', now: T0 - DAY });
    await takeSnapshot({ dbFile: t.store.location, snapshotsDir: t.snapshotsDir, archiveDir: t.archiveDir, kind: 'pre-restore', now: T0 - DAY + 1 });
    await takeSnapshot({ dbFile: t.store.location, snapshotsDir: t.snapshotsDir, archiveDir: t.archiveDir, kind: 'manual', now: T0 - DAY + 2 });
    for (let i = 0; i < 3 * 24; i++) {
      t.setNow(T0 + i * HOUR);
      await t.heartbeat.runCycle();
    }
    // Now: day 2, 23:00. Newest 5: hours 67..71. Newest of days 2 and 1: 71 and 47.
    const kept = [67, 68, 69, 70, 71, 47].map(hourly);
    const user = ['keep_me', timestampedName('pre-restore', T0 - DAY + 1), timestampedName('manual', T0 - DAY + 2)];
    expect(names(t.snapshotsDir, '.db')).toEqual([...kept, ...user].sort());
    expect(existsSync(t.archiveDir)).toBe(false);

    // Nothing kept by the settings: the newest automatic snapshot still stays.
    expect(planRetention(listSnapshots(t.snapshotsDir), T0 + 80 * DAY, { keepHourly: 0, keepDaily: 0 }).keep).toEqual([hourly(71)]);
    await t.store.close();
  });

  it('a startup snapshot counts as the scheduled one: no second copy right after a start', async () => {
    const t = setup({});
    t.setNow(T0 + 10 * HOUR + 30 * 60_000);
    await takeSnapshot({ dbFile: t.store.location, snapshotsDir: t.snapshotsDir, archiveDir: t.archiveDir, kind: 'startup', now: T0 + 10 * HOUR + 1 });
    const report = (await t.heartbeat.runCycle())!;
    expect(report.parts.find((p) => p.name === 'snapshot')!.skipped).toMatch(/^not due \(next at /);
    t.setNow(T0 + 11 * HOUR + 5 * 60_000);
    const later = (await t.heartbeat.runCycle())!;
    expect(later.parts.find((p) => p.name === 'snapshot')!.detail).toMatchObject({ name: timestampedName('hourly', T0 + 11 * HOUR + 5 * 60_000) });
    await t.store.close();
  });

  it('while the startup snapshot is still being written, a due hourly copy waits for the next cycle', async () => {
    let isWriting = true;
    const host: HeartbeatHost = {
      sessionId: null,
      runningForMs: () => undefined,
      replaceLostSession: () => Promise.reject(new Error('no session in this test')),
      resumeInterrupted: async () => [],
      get isWritingStartupSnapshot() {
        return isWriting;
      },
    };
    const t = setup({}, host);
    t.setNow(T0 + 10 * HOUR + 5 * 60_000); // due: no automatic snapshot yet
    const during = (await t.heartbeat.runCycle())!;
    expect(during.parts.find((p) => p.name === 'snapshot')!.skipped).toBe('the startup snapshot is still being written');
    expect(listSnapshots(t.snapshotsDir)).toEqual([]);
    isWriting = false;
    const after = (await t.heartbeat.runCycle())!;
    expect(after.parts.find((p) => p.name === 'snapshot')!.detail).toMatchObject({ name: timestampedName('hourly', T0 + 10 * HOUR + 5 * 60_000) });
    await t.store.close();
  });
});

describe('leftovers of snapshots killed half-way', () => {
  it('retention removes an old copy whose record was never written, and an old .partial; a fresh one may still be in progress', async () => {
    const dir = tempDir();
    const store = openSqliteStore(path.join(dir, 'cairn.db'));
    const snapshotsDir = path.join(dir, 'snapshots');
    const archiveDir = path.join(dir, 'archive');
    const now = Date.now();
    const kept = await takeSnapshot({ dbFile: store.location, snapshotsDir, archiveDir, kind: 'manual', now, durability: 'normal' });
    await store.close();
    const twoHoursAgo = new Date(now - 2 * HOUR);
    for (const [name, isOld] of [['killed-before-record.db', true], ['killed-before-rename.db.partial', true], ['still-copying.db', false]] as const) {
      writeFileSync(path.join(snapshotsDir, name), 'half a snapshot');
      if (isOld) utimesSync(path.join(snapshotsDir, name), twoHoursAgo, twoHoursAgo);
    }
    applyRetention({ snapshotsDir, archiveDir }, now, { keepHourly: 24, keepDaily: 30, archive: true });
    expect(readdirSync(snapshotsDir).sort()).toEqual([`${kept.name}.db`, `${kept.name}.json`, 'still-copying.db']);
  });
});

describe('cron ticks from an injected time', () => {
  const local = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) => new Date(y, mo, d, h, mi, s).getTime();

  it('finds the latest tick in a window, and none when the window holds none', () => {
    expect(previousTick('0 * * * *', local(2026, 2, 3, 10, 30), local(2026, 2, 3, 9, 0))).toBe(local(2026, 2, 3, 10, 0));
    expect(previousTick('0 * * * *', local(2026, 2, 3, 10, 30), local(2026, 2, 3, 10, 0))).toBeNull();
    expect(previousTick('0 * * * *', local(2026, 2, 3, 10, 0), local(2026, 2, 3, 9, 59))).toBe(local(2026, 2, 3, 10, 0));
    expect(previousTick('30 4 * * *', local(2026, 2, 3, 2, 0), local(2026, 2, 1, 0, 0))).toBe(local(2026, 2, 2, 4, 30));
    expect(previousTick('*/10 * * * * *', local(2026, 2, 3, 10, 0, 25), local(2026, 2, 3, 10, 0, 0))).toBe(local(2026, 2, 3, 10, 0, 20));
  });

  it('finds the next tick, across days and weeks', () => {
    expect(nextTick('0 * * * *', local(2026, 2, 3, 10, 0))).toBe(local(2026, 2, 3, 11, 0));
    expect(nextTick('0 * * * *', local(2026, 2, 3, 23, 59, 59))).toBe(local(2026, 2, 4, 0, 0));
    // 2026-03-03 is a Tuesday; the next Monday 03:00 is 2026-03-09.
    expect(nextTick('0 3 * * 1', local(2026, 2, 3, 10, 0))).toBe(local(2026, 2, 9, 3, 0));
    expect(nextTick('0 0 1 1 *', local(2026, 2, 3))).toBe(local(2027, 0, 1));
  });
});
