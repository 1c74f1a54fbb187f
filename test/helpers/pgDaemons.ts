/**
 * Several real `cairn start` processes on one PostgreSQL schema, each in a directory of its own as if
 * on its own machine (`CAIRN_HOST` tells them apart where pids cannot), and the checks every
 * multi-daemon test makes on what they left in the database.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, expect } from 'vitest';
import type { ConfigFile } from '../../src/config.js';
import { replayHistory } from '../../src/engine/replay.js';
import { openPostgresStore, type PostgresStore } from '../../src/store/postgres.js';
import { DaemonProcess, Workspace } from './cairnProcess.js';
import { dropTestSchemas } from './postgres.js';
import { tempDir } from './tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const QUICK_STAGE = path.join(root, 'test', 'fixtures', 'workflow', 'quick.sh');
export const AUTO = { approvals: { plan: 'auto', implementation: 'auto' } } as const;

/** One "machine": a working directory with its config, data directory and logs, and its daemon. */
export class Machine {
  readonly ws: Workspace;
  daemon: DaemonProcess | null = null;
  sessionId: string | null = null;

  constructor(
    readonly url: string,
    readonly host: string | null,
  ) {
    this.ws = new Workspace(tempDir('cairn-machine-'));
  }

  get env(): NodeJS.ProcessEnv {
    return { CAIRN_DATABASE_URL: this.url, ...(this.host ? { CAIRN_HOST: this.host } : {}) };
  }

  /** Starts `cairn start` and waits until its session exists. */
  async start(env: NodeJS.ProcessEnv = {}): Promise<DaemonProcess> {
    this.daemon = this.ws.startDaemon([], { ...this.env, ...env });
    const started = await this.daemon.waitForLog(/cairn daemon started/, 20_000);
    this.sessionId = started.session as string;
    return this.daemon;
  }

  cli(args: string[]) {
    return this.ws.cli(args, this.env);
  }

  json<T = any>(args: string[]): T {
    const r = this.cli([...args, '--json']);
    if (r.code !== 0) throw new Error(`cairn ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  async stop(): Promise<void> {
    if (this.daemon && this.daemon.child.exitCode === null && this.daemon.child.signalCode === null) {
      const exited = await this.daemon.kill('SIGTERM');
      expect(exited, `daemon on ${this.host ?? 'this host'}: ${this.daemon.stderr}`).toEqual({ code: 0, signal: null });
    }
  }
}

/** Quick command stages everywhere, unless `stages` says otherwise. */
export function writeMachineConfig(machine: Machine, config: ConfigFile = {}, stageEnv: Record<string, string> = {}): void {
  const quick = { run: [QUICK_STAGE], env: stageEnv };
  machine.ws.writeConfig({
    ...AUTO,
    views: false,
    ...config,
    stages: { plan: quick, implement: quick, review: quick, verify: quick, ...config.stages },
  });
}

export async function openTestStore(url: string): Promise<PostgresStore> {
  return openPostgresStore(url);
}

/**
 * For every task: seq has no gap, each stage run has at most one recorded result and the runs table
 * agrees, and replaying the stored events reproduces the stored snapshot.
 */
export async function expectConsistent(store: PostgresStore): Promise<void> {
  for (const task of await store.listTasks()) {
    const history = await store.getHistory(task.id);
    expect(history.map((h) => h.seq)).toEqual(history.map((_, i) => i + 1));
    const results = history
      .filter((h) => h.event.type === 'STAGE_SUCCEEDED' || h.event.type === 'STAGE_FAILED')
      .map((h) => `${h.event.stage}#${h.event.attempt}`);
    expect(new Set(results).size, `task ${task.id} results ${results.join(' ')}`).toBe(results.length);
    expect(replayHistory(history)).toEqual(task.snapshot);
    const runs = await store.getStageRuns(task.id);
    expect(runs.filter((r) => r.outcome === 'succeeded' || r.outcome === 'failed').length).toBe(results.length);
  }
}

/** Lines of a QUICK_LEDGER file: run id and pid of every execution. */
export function readQuickLedger(file: string): { runId: string; pid: number }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [runId, pid] = line.split(' ');
      return { runId, pid: Number(pid) };
    });
}

/**
 * The daemons and stores a test file starts: after each test its daemons are killed (a frozen one is
 * woken first, so the kill lands) and its stores closed, after all its schemas are dropped. Call once
 * at the top of the file.
 */
export function trackDaemons(): { machine: (url: string, host?: string | null) => Machine; store: (url: string) => Promise<PostgresStore> } {
  const machines: Machine[] = [];
  const stores: PostgresStore[] = [];
  afterEach(async () => {
    for (const m of machines.splice(0)) {
      if (!m.daemon || m.daemon.child.exitCode !== null || m.daemon.child.signalCode !== null) continue;
      m.daemon.child.kill('SIGCONT');
      await m.daemon.kill('SIGKILL');
    }
    for (const s of stores.splice(0)) await s.close();
  });
  afterAll(() => dropTestSchemas());
  return {
    machine: (url, host = null) => {
      const m = new Machine(url, host);
      machines.push(m);
      return m;
    },
    store: async (url) => {
      const s = await openTestStore(url);
      stores.push(s);
      return s;
    },
  };
}
