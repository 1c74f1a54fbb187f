/**
 * Remembers configs that passed validation, keyed by everything validation reads (the merged settings,
 * the file's path, the directories relative paths resolve against) and by the validating code itself,
 * so a new cairn version validates again. A read verb then starts without loading the schema library.
 * The cache sits in the user's cache directory, private (0700/0600): a config may hold a database URL.
 * Errors are never cached, and a cache that cannot be read or written is simply not used.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from './config.js';
import { writeFileAtomic } from './writeFileAtomic.js';

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

/**
 * FNV-1a over UTF-16 code units, twice with different seeds (64 bits): loading node:crypto for a
 * SHA-256 costs a read verb about 2 ms. Not collision-proof, so an entry also holds its whole key.
 */
function hash(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}

/** The entry's file and the key it must hold, or null when there is no fingerprint. */
function entryOf(input: unknown, env: NodeJS.ProcessEnv): { file: string; key: string } | null {
  const fingerprint = schemaFingerprint();
  if (fingerprint === null) return null;
  const key = `${fingerprint}\0${JSON.stringify(input)}`;
  return { file: path.join(cacheDir(env), `${hash(key)}.json`), key };
}

export function readCachedConfig(input: unknown, env: NodeJS.ProcessEnv): Config | undefined {
  const entry = entryOf(input, env);
  if (!entry) return undefined;
  try {
    const cached = JSON.parse(readFileSync(entry.file, 'utf8')) as { key?: unknown; config?: Config };
    return cached.key === entry.key ? cached.config : undefined;
  } catch {
    return undefined;
  }
}

export function writeCachedConfig(input: unknown, config: Config, env: NodeJS.ProcessEnv): void {
  const entry = entryOf(input, env);
  if (!entry) return;
  const { file, key } = entry;
  try {
    const dir = path.dirname(file);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // A cache: a power cut may lose an entry, which is then validated again; no fsync.
    writeFileAtomic(file, JSON.stringify({ key, config }), { fsync: false });
    const entries = readdirSync(dir).filter((f) => f.endsWith('.json'));
    if (entries.length > MAX_ENTRIES) {
      const byAge = entries.map((f) => ({ f, at: statSync(path.join(dir, f)).mtimeMs })).sort((a, b) => a.at - b.at);
      for (const { f } of byAge.slice(0, entries.length - MAX_ENTRIES)) rmSync(path.join(dir, f), { force: true });
    }
  } catch {
    // A read-only or full home directory: validation just runs every time.
  }
}
