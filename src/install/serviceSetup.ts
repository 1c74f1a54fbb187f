/**
 * Everything a service file needs to know about this install: which node and which cairn.cjs run, from
 * where, with which config, as whom, and which directories cairn and its stages write (a hardened
 * systemd unit may write nothing else). Read from the loaded config and the running process; the
 * renderers (systemdUnit.ts, pm2Ecosystem.ts) only format it.
 */
import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';
import { UsageError } from '../errors.js';
import { packageVersion } from '../packageVersion.js';

export interface ServiceSetup {
  nodePath: string;
  nodeVersion: string;
  /** This install's dist/src/cairn.cjs. */
  cairnPath: string;
  cairnVersion: string;
  /** How a shell runs this cairn: `cairn`, or `node /…/cairn.cjs` when another (or none) is on PATH. */
  cairnCommand: string;
  /** The config file's directory: relative paths in the config are resolved against it anyway. */
  workingDir: string;
  configFile: string;
  dataDir: string;
  /** Set when the data directory came from --data-dir or CAIRN_DATA_DIR: the service file must pass it on. */
  dataDirArg: string | null;
  user: string;
  /** The user's home directory, for `pm2 startup --hp`; null when not known. */
  home: string | null;
  /** PATH for the daemon and its stages: node's own directory first, so programs npm or nvm put beside node are found. */
  pathEnv: string;
  /** Every directory cairn or a stage writes, longest-prefix deduplicated. */
  writePaths: string[];
  shutdownGraceMs: number;
}

/** The flags that point a cairn command at this install's config (and data directory, when given apart). Pure. */
export function configFlags(setup: ServiceSetup): string[] {
  return ['--config', setup.configFile, ...(setup.dataDirArg ? ['--data-dir', setup.dataDirArg] : [])];
}

const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
// A user name systemd and pm2 take as it is (systemd also allows a trailing `$` for Samba machine accounts; we do not).
const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}$/i;

/** The `cairn` an absolute path names: this module is dist/src/install/, the bundle is dist/src/cairn.cjs. */
export function cairnScriptPath(): string {
  return fileURLToPath(new URL('../cairn.cjs', import.meta.url));
}

/** `user`'s home directory from the user database (getent), null if it has no entry; undefined when getent is missing. */
function lookUpHome(user: string): string | null | undefined {
  const r = spawnSync('getent', ['passwd', user], { encoding: 'utf8' });
  if (r.error) return undefined;
  if (r.status !== 0) return null;
  return r.stdout.split(':')[5]?.trim() || null;
}

function currentUser(): { name: string; home: string } {
  const info = os.userInfo();
  return { name: info.username, home: info.homedir };
}

/** Keeps each path once, and drops one inside another already kept (ReadWritePaths covers subdirectories). Pure. */
export function outermostPaths(paths: readonly string[]): string[] {
  const sorted = [...new Set(paths.map((p) => path.resolve(p)))].sort((a, b) => a.length - b.length);
  const kept: string[] = [];
  for (const p of sorted) if (!kept.some((k) => p === k || p.startsWith(k.endsWith('/') ? k : `${k}/`))) kept.push(p);
  return kept.sort();
}

/** The directories a daemon on `config` writes: the data directory, the database's, the inbox, the JSON state, each command's cwd. Pure. */
export function writtenDirectories(config: Config): string[] {
  const fromBase = (p: string) => path.resolve(config.baseDir, p);
  const dirs = [config.dataDir];
  if (config.store.kind === 'sqlite' && config.store.path) dirs.push(path.dirname(fromBase(config.store.path)));
  if (config.inbox.dir) dirs.push(fromBase(config.inbox.dir));
  if (config.state.dir) dirs.push(fromBase(config.state.dir));
  // A command stage (and the cycle command) runs in its cwd, by default the config's directory: its work dir.
  for (const stage of Object.values(config.stages)) if ('run' in stage) dirs.push(stage.cwd ? fromBase(stage.cwd) : config.baseDir);
  if (config.cycle) dirs.push(config.cycle.cwd ? fromBase(config.cycle.cwd) : config.baseDir);
  return outermostPaths(dirs);
}

/**
 * What to write into a service file for `config` (which must come from a file) run as `user` (default:
 * whoever runs this). Runs `getent` to check a named user exists; throws UsageError if it does not.
 */
export function describeServiceSetup(config: Config & { source: string }, opts: { user?: string; dataDirArg: string | null }): ServiceSetup {
  const me = currentUser();
  const user = opts.user ?? me.name;
  if (!USER_NAME.test(user)) throw new UsageError(`--user ${JSON.stringify(user)} is not a user name; give the name of the account the service runs as, e.g. --user cairn`);
  let home: string | null = user === me.name ? me.home : null;
  if (user !== me.name) {
    const found = lookUpHome(user);
    if (found === null) {
      throw new UsageError(`user ${user} does not exist on this machine (getent passwd ${user} finds nothing); create it first (useradd --system --create-home ${user}) or name another with --user`);
    }
    home = found ?? null;
  }
  const nodeDir = path.dirname(process.execPath);
  return {
    nodePath: process.execPath,
    nodeVersion: process.version,
    cairnPath: realpathSync(cairnScriptPath()),
    cairnVersion: packageVersion(),
    cairnCommand: cairnInvocation(),
    workingDir: config.baseDir,
    configFile: config.source,
    dataDir: config.dataDir,
    dataDirArg: opts.dataDirArg,
    user,
    home,
    pathEnv: [nodeDir, ...SYSTEM_PATH.filter((d) => d !== nodeDir)].join(':'),
    writePaths: writtenDirectories(config),
    shutdownGraceMs: config.shutdownGraceMs,
  };
}

/** `s` as one word for a POSIX shell, quoted only when it needs it. Pure. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** How a person runs this cairn from a shell: `cairn` when that is it on PATH, else node and the script. */
export function cairnInvocation(cairnPath = cairnScriptPath()): string {
  let target: string;
  try {
    target = realpathSync(cairnPath);
  } catch {
    target = cairnPath;
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      if (realpathSync(path.join(dir, 'cairn')) === target) return 'cairn';
    } catch {
      // not there, or a dangling link: look further
    }
  }
  return `node ${shellQuote(target)}`;
}
