/**
 * Remembers configs that passed validation, keyed by everything validation reads (the merged settings,
 * the file's path, the directories relative paths resolve against) and by the validating code itself,
 * so a new cairn version validates again. A read verb then starts without loading the schema library.
 * The cache sits in the user's cache directory, private (0700/0600): a config may hold a database URL.
 * Errors are never cached, and a cache that cannot be read or written is simply not used.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from './config.js';

/** Enough for every config a user switches between; the oldest go first. */
const MAX_ENTRIES = 100;

function cacheDir(env: NodeJS.ProcessEnv): string {
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'cairn', 'config');
}

/** The validating module's size and time: another build of it means another key. Null from sources (tests). */
function schemaFingerprint(): string | null {
  try {
    const st = statSync(fileURLToPath(new URL('./config.js', import.meta.url)));
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return null;
  }
}

function entryFile(input: unknown, env: NodeJS.ProcessEnv): string | null {
  const fingerprint = schemaFingerprint();
  if (fingerprint === null) return null;
  const key = createHash('sha256').update(fingerprint).update('\0').update(JSON.stringify(input)).digest('hex');
  return path.join(cacheDir(env), `${key}.json`);
}

export function readCachedConfig(input: unknown, env: NodeJS.ProcessEnv): Config | undefined {
  const file = entryFile(input, env);
  if (!file) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Config;
  } catch {
    return undefined;
  }
}

export function writeCachedConfig(input: unknown, config: Config, env: NodeJS.ProcessEnv): void {
  const file = entryFile(input, env);
  if (!file) return;
  try {
    const dir = path.dirname(file);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(config), { mode: 0o600 });
    renameSync(tmp, file);
    const entries = readdirSync(dir).filter((f) => f.endsWith('.json'));
    if (entries.length > MAX_ENTRIES) {
      const byAge = entries.map((f) => ({ f, at: statSync(path.join(dir, f)).mtimeMs })).sort((a, b) => a.at - b.at);
      for (const { f } of byAge.slice(0, entries.length - MAX_ENTRIES)) rmSync(path.join(dir, f), { force: true });
    }
  } catch {
    // A read-only or full home directory: validation just runs every time.
  }
}
