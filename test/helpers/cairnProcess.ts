/**
 * Runs the real `cairn` binary (dist/, built by `npm test` before vitest starts) as child processes:
 * one-shot CLI calls, and long-lived daemons whose JSON log lines tests wait on with a deadline.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConfigFile } from '../../src/config.js';

/** The repository root: the nearest directory above this file with a package.json (also when compiled into dist/). */
function findRoot(from: string): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) if (existsSync(path.join(dir, 'package.json'))) return dir;
  throw new Error(`no package.json above ${from}`);
}
const root = findRoot(path.dirname(fileURLToPath(import.meta.url)));
export const CAIRN_BIN = path.join(root, 'dist', 'src', 'cairn.cjs');
export const STAGE_SCRIPT = path.join(root, 'test', 'fixtures', 'workflow', 'stage.sh');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LedgerLine {
  runId: string;
  task: number;
  stage: string;
  attempt: number;
  pid: number;
}

/** The ledger file stage.sh appends "<run id> <task> <stage> <attempt> <pid>" to, one line per execution. */
export function readLedger(file: string): LedgerLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [runId, task, stage, attempt, pid] = line.split(' ');
      return { runId, task: Number(task), stage, attempt: Number(attempt), pid: Number(pid) };
    });
}

/** A test's working directory with a config whose four stages run the fixture stage script. */
export class Workspace {
  readonly recordDir: string;
  constructor(readonly dir: string) {
    this.recordDir = path.join(dir, 'records');
    mkdirSync(this.recordDir, { recursive: true });
  }

  get dataDir(): string {
    return path.join(this.dir, 'state');
  }

  get dbFile(): string {
    return path.join(this.dataDir, 'cairn.db');
  }

  /** Creates the (empty) data directory, as a write verb or `cairn start` would; a read verb refuses one that is missing. */
  createDataDir(): void {
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
  }

  /** Writes cairn.config.json: every stage runs stage.sh; `stageEnv` steers each stage. */
  writeConfig(config: ConfigFile = {}, stageEnv: Partial<Record<'plan' | 'implement' | 'review' | 'verify', Record<string, string>>> = {}): void {
    const stage = (name: 'plan' | 'implement' | 'review' | 'verify') => ({
      run: [STAGE_SCRIPT],
      env: { STAGE_RECORD_DIR: this.recordDir, ...stageEnv[name] },
    });
    const full = {
      heartbeat: { cron: '*/1 * * * * *', staleAfter: '30s' },
      limits: { retryBackoff: '50ms' },
      ...config,
      stages: { plan: stage('plan'), implement: stage('implement'), review: stage('review'), verify: stage('verify'), ...config.stages },
    };
    writeFileSync(path.join(this.dir, 'cairn.config.json'), JSON.stringify(full, null, 2));
  }

  /** Ledger lines the stage script appended: one per execution. */
  ledger(): LedgerLine[] {
    return readLedger(path.join(this.recordDir, 'ledger'));
  }

  /** The JSON a stage run read on stdin. */
  stageInput(task: number, stage: string, attempt: number): any {
    return JSON.parse(readFileSync(path.join(this.recordDir, `input-${task}-${stage}-${attempt}.json`), 'utf8'));
  }

  cli(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
    const r = spawnSync(process.execPath, [CAIRN_BIN, ...args], {
      cwd: this.dir,
      env: { ...process.env, CAIRN_LOG_FORMAT: 'json', ...env },
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** Runs a CLI verb that must succeed with --json and returns the parsed output. */
  json<T = any>(args: string[]): T {
    const r = this.cli([...args, '--json']);
    if (r.code !== 0) throw new Error(`cairn ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  submit(request: string, extra: string[] = []): number {
    return this.json<{ id: number }>(['submit', request, ...extra]).id;
  }

  show(id: number): any {
    return this.json(['show', String(id)]);
  }

  history(id: number): any[] {
    return this.json(['history', String(id)]);
  }

  startDaemon(args: string[] = [], env: NodeJS.ProcessEnv = {}): DaemonProcess {
    return new DaemonProcess(
      spawn(process.execPath, [CAIRN_BIN, 'start', ...args], {
        cwd: this.dir,
        env: { ...process.env, CAIRN_LOG_FORMAT: 'json', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
  }
}

export class DaemonProcess {
  readonly lines: any[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private buffer = '';

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line));
        } catch {
          this.lines.push({ msg: line });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Waits for a log line whose msg matches; fails with the log so far if the daemon exits or time runs out. */
  async waitForLog(match: RegExp, timeoutMs = 15_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (Date.now() < deadline) {
      const found = this.lines.find((l) => match.test(String(l.msg)));
      if (found) return found;
      if (exited) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no log line matching ${match} (${exited ? 'daemon exited' : 'timed out'}); log:\n${this.lines.map((l) => l.msg).join('\n')}\nstderr:\n${this.stderr}`);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL') {
    this.child.kill(signal);
    return this.exited;
  }
}

/** A process that exited but was not reaped (a zombie) counts as gone. */
export { isPidAlive as isAlive } from '../../src/process/sessions.js';
