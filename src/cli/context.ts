/** What every verb needs: the global flags, the config, an open store, and parsed arguments. */
import { userInfo } from 'node:os';
import type { Config } from '../config.js';
import { loadConfig, type ConfigOverrides } from '../loadConfig.js';
import { UsageError } from '../errors.js';
// Static: it is small, and loading it with the verb's modules saves a read verb a round of module loading.
import { describeDamage, openStore } from '../store/openStore.js';
import type { Store } from '../store/store.js';

export interface GlobalOptions {
  config?: string;
  dataDir?: string;
  database?: string;
  /** Not a flag: read verbs set it (readVerbs.ts) so a data directory that does not exist is reported, not created. */
  requireDataDir?: boolean;
}

export interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const stdio: Output = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

export function loadCliConfig(global: GlobalOptions, overrides: ConfigOverrides = {}): Promise<Config> {
  return loadConfig({
    file: global.config,
    overrides: { dataDir: global.dataDir, databaseUrl: global.database, ...overrides },
  });
}

/** Loads config and opens the store; the caller closes it. */
export async function openCliStore(global: GlobalOptions): Promise<{ config: Config; store: Store }> {
  const config = await loadCliConfig(global);
  return { config, store: await openStore(config, { mustExist: global.requireDataDir }) };
}

/** Runs `fn` with an open store and always closes it. SQLite's SQLITE_CORRUPT becomes the damaged-file message. */
export async function withStore<T>(global: GlobalOptions, fn: (ctx: { config: Config; store: Store }) => Promise<T>): Promise<T> {
  const ctx = await openCliStore(global);
  try {
    return await fn(ctx);
  } catch (e) {
    throw await describeDamage(ctx.config, e);
  } finally {
    await ctx.store.close();
  }
}

export function parseTaskId(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`"${value}" is not a task id; ids are positive whole numbers, as \`cairn list\` shows them`);
  }
  return Number(value);
}

export function parsePositiveInt(value: string, flag: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) throw new UsageError(`${flag} needs a positive whole number, got "${value}"`);
  return Number(value);
}

/** Who a CLI write is recorded as: --by, else the OS user. */
export function actorName(by?: string): string {
  if (by && by.trim()) return by.trim();
  try {
    return userInfo().username;
  } catch {
    return 'cli';
  }
}

/**
 * An engine for a mutating verb, with the zero-parse views attached; `done()` writes what the views
 * still have scheduled and must be awaited before the process exits.
 */
export async function createCliEngine(ctx: { config: Config; store: Store }) {
  const { Engine } = await import('../engine/engine.js');
  const { attachViews } = await import('../views/attachViews.js');
  const engine = new Engine(ctx.store, ctx.config);
  // Every write verb's commit wakes a daemon on the same file at once (only write verbs load this).
  (await import('../engine/announceCommits.js')).announceCommits(engine, ctx.config);
  const views = attachViews(engine, ctx.config);
  return { engine, done: async () => views?.flush() };
}
