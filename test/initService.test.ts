/**
 * `cairn init` and `cairn service`, run as the built binary: the starter config loads to the schema's
 * defaults and its stage scripts really run a task through a daemon; init never replaces a file; the
 * systemd unit `cairn service systemd` prints passes `systemd-analyze verify` and rates ≤ 5.0 on
 * `systemd-analyze security`; the pm2 file names this install's node, cairn and config.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { loadConfig } from '../src/loadConfig.js';
import { CAIRN_BIN, DaemonProcess, type CliResult } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const STAGES = ['plan.sh', 'implement.sh', 'review.sh', 'verify.sh'];

function cairn(cwd: string, args: string[]): CliResult {
  const r = spawnSync(process.execPath, [CAIRN_BIN, ...args], { cwd, env: { ...process.env, CAIRN_LOG_FORMAT: 'json' }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Every key path of a JSON value's objects ("limits.retryBackoff"), sorted. */
function keyPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  return Object.entries(value)
    .flatMap(([k, v]) => [`${prefix}${k}`, ...keyPaths(v, `${prefix}${k}.`)])
    .sort();
}

/** `systemd-analyze` with `args`; the test fails, not skips, where it is missing. */
function systemdAnalyze(args: string[]): CliResult {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8', timeout: 30_000 });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error('systemd-analyze is not installed, so the unit cannot be checked: apt-get install systemd (.ci/run does it)');
  }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('cairn init', () => {
  it('writes a private config with every key at its default, four executable stage scripts, and the next commands', async () => {
    const dir = path.join(tempDir(), 'new', 'project');
    const r = cairn(tempDir(), ['init', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const configFile = path.join(dir, 'cairn.config.json');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    for (const name of STAGES) expect(statSync(path.join(dir, 'stages', name)).mode & 0o777).toBe(0o700);
    expect(r.stdout).toContain(`start --config ${configFile}`);
    expect(r.stdout).toContain(`submit --config ${configFile}`);
    expect(r.stdout).toContain(`service systemd --config ${configFile} > cairn.service`);
    expect(r.stdout).toContain(`service pm2 --config ${configFile} > ecosystem.config.cjs`);

    // Through the real loader, the file gives what the schema gives for an empty config, stages aside.
    const raw = JSON.parse(readFileSync(configFile, 'utf8'));
    const loaded = await loadConfig({ file: configFile, env: { XDG_CACHE_HOME: tempDir() } });
    const defaults = defaultConfig({}, dir);
    const { stages, ...loadedRest } = loaded;
    const { stages: _defaultStages, ...defaultRest } = defaults;
    expect({ ...loadedRest, source: null }).toEqual(defaultRest);
    expect(loaded.dataDir).toBe(path.join(dir, 'state'));
    // Every key the schema fills in is written out, so a reader sees each setting there is.
    const withoutStages = (paths: string[]) => paths.filter((p) => p !== 'stages' && !p.startsWith('stages.'));
    expect(withoutStages(keyPaths(raw))).toEqual(withoutStages(keyPaths(defaultRest)).filter((p) => p !== 'baseDir' && p !== 'source'));
    expect(Object.values(stages).map((s) => ('run' in s ? s.run : null))).toEqual(STAGES.map((s) => [`./stages/${s}`]));
  });

  it('writes scripts that `cairn start --config` runs: a submitted task goes through every stage to completed', async () => {
    const dir = path.join(tempDir(), 'project');
    expect(cairn(tempDir(), ['init', dir]).code).toBe(0);
    const configFile = path.join(dir, 'cairn.config.json');
    // Started and driven from other directories: everything hangs off the absolute --config.
    const elsewhere = tempDir();
    const daemon = new DaemonProcess(
      spawn(process.execPath, [CAIRN_BIN, 'start', '--config', configFile], { cwd: elsewhere, env: { ...process.env, CAIRN_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    try {
      await daemon.waitForLog(/^cairn daemon started/);
      const submitted = cairn(elsewhere, ['submit', '--config', configFile, 'write the greeting', '--json']);
      expect(submitted.code).toBe(0);
      const id = String(JSON.parse(submitted.stdout).id);
      const show = () => JSON.parse(cairn(elsewhere, ['show', id, '--config', configFile, '--json']).stdout);
      const atPlanGate = await waitFor(() => (show().state === 'plan_awaiting_approval' ? show() : null), { timeoutMs: 20_000, what: 'the plan gate' });
      expect(atPlanGate.outputs.plan).toMatchObject({ summary: 'Plan for: write the greeting', attempt: 1 });
      expect(cairn(elsewhere, ['approve', id, '--config', configFile]).code).toBe(0);
      await waitFor(() => show().state === 'implementation_awaiting_approval', { timeoutMs: 20_000, what: 'the implementation gate' });
      expect(cairn(elsewhere, ['approve', id, '--config', configFile]).code).toBe(0);
      const done = await waitFor(() => (show().state === 'completed' ? show() : null), { timeoutMs: 20_000, what: 'completed' });
      const result = path.join(dir, 'state', 'workspace', id, 'RESULT.md');
      expect(done.outputs.implementation.files).toEqual([result]);
      expect(readFileSync(result, 'utf8')).toMatch(/^# write the greeting\n\nPlan for: write the greeting\n/);
      expect(done.outputs.review).toEqual({ verdict: 'approve', comments: 'looked at 1 file(s)' });
      expect(String(done.outputs.verification)).toMatch(/^verified: .*RESULT\.md has 3 lines/);
      expect(existsSync(path.join(elsewhere, 'state'))).toBe(false);
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
  }, 90_000);

  it('refuses to replace a config or a stage script: exit 1, the file named, nothing written', () => {
    const dir = tempDir();
    const configFile = path.join(dir, 'cairn.config.json');
    writeFileSync(configFile, '{ "concurrency": 1 }\n');
    const r = cairn(dir, ['init']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${configFile} already exists; \`cairn init\` never replaces a file`);
    expect(r.stderr).toMatch(/move it away, or run `cairn init` on another directory/);
    expect(readFileSync(configFile, 'utf8')).toBe('{ "concurrency": 1 }\n');
    expect(existsSync(path.join(dir, 'stages'))).toBe(false);

    // A second init over a complete one names every file and changes none.
    const full = path.join(tempDir(), 'p');
    expect(cairn(dir, ['init', full]).code).toBe(0);
    const plan = path.join(full, 'stages', 'plan.sh');
    writeFileSync(plan, '#!/bin/sh\necho my planner\n', { mode: 0o700 });
    const again = cairn(dir, ['init', full]);
    expect(again.code).toBe(1);
    for (const name of STAGES) expect(again.stderr).toContain(path.join(full, 'stages', name));
    expect(readFileSync(plan, 'utf8')).toBe('#!/bin/sh\necho my planner\n');
  });
});

describe('cairn service', () => {
  it('exits 2 without a config file and says to run `cairn init`', () => {
    for (const manager of ['systemd', 'pm2']) {
      const r = cairn(tempDir(), ['service', manager]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/no config file found .*run `cairn init` to write a starter config/);
    }
    const unknown = cairn(tempDir(), ['service', 'launchd']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/the service managers are pm2 and systemd/);
  });

  it('prints a systemd unit for this install that passes systemd-analyze verify and rates ≤ 5.0 on security', () => {
    const dir = path.join(tempDir(), 'project');
    expect(cairn(tempDir(), ['init', dir]).code).toBe(0);
    const configFile = path.join(dir, 'cairn.config.json');
    // A stage working in a home directory: writable there although ProtectHome=read-only.
    const raw = JSON.parse(readFileSync(configFile, 'utf8'));
    raw.stages.verify.cwd = '/home/cairn-example/work';
    writeFileSync(configFile, JSON.stringify(raw));
    const r = cairn(tempDir(), ['service', 'systemd', '--config', configFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const unit = r.stdout;
    const nodeDir = path.dirname(process.execPath);
    expect(unit).toContain(`\nExecStart=${process.execPath} ${realpathSync(CAIRN_BIN)} start --config ${configFile}\n`);
    expect(unit).toContain(`\nWorkingDirectory=${dir}\n`);
    expect(unit).toContain(`\nUser=${os.userInfo().username}\n`);
    expect(unit).toMatch(new RegExp(`\\nEnvironment=PATH=${nodeDir}:(.*:)?/usr/local/bin:.*:/bin\\n`));
    expect(unit).toContain(`install -d -m 0700 -o ${os.userInfo().username} ${path.join(dir, 'state')}`);
    expect(unit).toContain('\n#   systemctl daemon-reload && systemctl enable --now cairn\n');
    for (const line of ['RestartPreventExitStatus=2', 'Restart=on-failure', 'KillMode=mixed', 'UMask=0077', 'ProtectSystem=strict', 'ProtectHome=read-only', 'NoNewPrivileges=yes', 'Environment=CAIRN_LOG_FORMAT=json']) {
      expect(unit).toContain(`\n${line}\n`);
    }
    // The data directory lies inside the config's directory, the stages' work dir: one path covers both.
    expect(unit.match(/^ReadWritePaths=.*$/gm)).toEqual(['ReadWritePaths=/home/cairn-example/work', `ReadWritePaths=${dir}`]);
    // The test's directories are under /tmp, which a private /tmp would hide.
    expect(unit).toContain('\nPrivateTmp=no\n');
    expect(unit).not.toMatch(/MemoryDenyWriteExecute/);

    const unitFile = path.join(tempDir(), 'cairn.service');
    writeFileSync(unitFile, unit);
    const verify = systemdAnalyze(['verify', unitFile]);
    expect(verify.stdout + verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    const security = systemdAnalyze(['security', '--offline=yes', unitFile]);
    expect(security.code).toBe(0);
    const exposure = Number(/Overall exposure level for cairn\.service: (\d+(?:\.\d+)?)/.exec(security.stdout)?.[1]);
    expect(exposure).toBeGreaterThan(0);
    expect(exposure).toBeLessThanOrEqual(5.0);
  });

  it('prints a pm2 ecosystem file with this node, this cairn, the config, logs in the data directory and PATH', () => {
    const dir = path.join(tempDir(), 'project');
    expect(cairn(tempDir(), ['init', dir]).code).toBe(0);
    const configFile = path.join(dir, 'cairn.config.json');
    const r = cairn(dir, ['service', 'pm2']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\/\/ .*\n(\/\/.*\n)*\/\/ {3}\(umask 077 && pm2 start ecosystem\.config\.cjs\) && pm2 save\n/);
    const file = path.join(tempDir(), 'ecosystem.config.cjs');
    writeFileSync(file, r.stdout);
    const { apps } = createRequire(import.meta.url)(file) as { apps: Record<string, unknown>[] };
    const logs = path.join(dir, 'state', 'logs');
    expect(apps).toEqual([
      {
        name: 'cairn',
        cwd: dir,
        script: realpathSync(CAIRN_BIN),
        args: ['start', '--config', configFile],
        interpreter: process.execPath,
        kill_timeout: 15_000,
        treekill: false,
        autorestart: true,
        stop_exit_codes: [2],
        min_uptime: '10s',
        max_restarts: 50,
        exp_backoff_restart_delay: 1000,
        out_file: path.join(logs, 'daemon.out.log'),
        error_file: path.join(logs, 'daemon.err.log'),
        merge_logs: true,
        env: { NODE_ENV: 'production', CAIRN_LOG_FORMAT: 'json', PATH: expect.stringMatching(new RegExp(`^${path.dirname(process.execPath)}:`)) },
      },
    ]);
  });
});
