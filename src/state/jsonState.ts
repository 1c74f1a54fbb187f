/**
 * Key-value state as human-readable files, in the layout of the legacy JSON state manager so its
 * directories are read as they are:
 *
 *   <dir>/<ns>/state.json                  {"key": {"value": …, "timestamp": "…"}, …}
 *   <dir>/<ns>/checkpoints/<name>.json     the same shape: a whole copy; its mtime is when it was taken
 *
 * Every write replaces a file atomically (writeFileAtomic) and every read-modify-write holds the
 * namespace's lock file (`<dir>/<ns>/.lock`), so two processes writing one namespace lose nothing.
 * Reads take no lock: a rename never exposes a half-written file. New directories are 0700, files 0600.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { StateBackendError } from '../errors.js';
import { withFileLock } from './fileLock.js';
import { writeFileAtomic } from '../writeFileAtomic.js';
import {
  assertKey,
  assertName,
  encodeValue,
  noCheckpoint,
  parseStateTime,
  sortCheckpoints,
  sortEntries,
  stateTimestamp,
  type CheckpointInfo,
  type JsonValue,
  type NamespaceDump,
  type StateBackend,
  type StateEntry,
} from './stateBackend.js';

const STATE_FILE = 'state.json';
const CHECKPOINT_DIR = 'checkpoints';

type FileEntries = Record<string, { value: JsonValue; timestamp: string }>;

function isMissing(e: unknown): boolean {
  return (e as NodeJS.ErrnoException).code === 'ENOENT';
}

/** Reads a `{key: {value, timestamp}}` file; null when it does not exist. Throws StateBackendError naming a damaged file. */
function readEntries(file: string): StateEntry[] | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (isMissing(e)) return null;
    throw new StateBackendError(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new StateBackendError(`${file} is not valid JSON (${(e as Error).message}); repair it, or restore it from a checkpoint in ${CHECKPOINT_DIR}/`, { cause: e });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new StateBackendError(`${file} must hold an object of {"key": {"value": …, "timestamp": …}}; repair it or move it aside`);
  }
  return Object.entries(parsed as Record<string, unknown>).map(([key, entry]) => {
    if (entry === null || typeof entry !== 'object' || !('value' in entry)) {
      throw new StateBackendError(`${file}: key "${key}" is not of the form {"value": …, "timestamp": …}; repair it or move the file aside`);
    }
    const { value, timestamp } = entry as { value: JsonValue; timestamp?: unknown };
    return { key, value, updatedAt: typeof timestamp === 'string' ? timestamp : String(timestamp ?? '') };
  });
}

function formatEntries(entries: StateEntry[]): string {
  // A null-prototype object: a key named "__proto__" is data, not a prototype.
  const out: FileEntries = Object.create(null);
  for (const e of entries) out[e.key] = { value: e.value, timestamp: e.updatedAt };
  return `${JSON.stringify(out, null, 2)}\n`;
}

export class JsonStateBackend implements StateBackend {
  readonly kind = 'json' as const;
  readonly location: string;

  constructor(
    dir: string,
    private readonly now: () => number = Date.now,
    private readonly lockTimeoutMs?: number,
  ) {
    this.location = path.resolve(dir);
  }

  private nsDir(ns: string): string {
    assertName('namespace', ns);
    return path.join(this.location, ns);
  }

  private stateFile(ns: string): string {
    return path.join(this.nsDir(ns), STATE_FILE);
  }

  private checkpointFile(ns: string, name: string): string {
    assertName('checkpoint', name);
    return path.join(this.nsDir(ns), CHECKPOINT_DIR, `${name}.json`);
  }

  private read(ns: string): StateEntry[] {
    return readEntries(this.stateFile(ns)) ?? [];
  }

  private write(file: string, entries: StateEntry[], mtimeMs?: number): void {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileAtomic(file, formatEntries(entries), { mtimeMs });
  }

  /** Read-modify-write of one namespace under its lock. */
  private async locked<T>(ns: string, fn: () => T): Promise<T> {
    const dir = this.nsDir(ns);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new StateBackendError(`cannot create ${dir}: ${(e as Error).message}; check that state.dir is writable`, { cause: e });
    }
    return withFileLock(path.join(dir, '.lock'), fn, { timeoutMs: this.lockTimeoutMs });
  }

  async get(ns: string, key: string): Promise<StateEntry | null> {
    assertKey(key);
    return this.read(ns).find((e) => e.key === key) ?? null;
  }

  async set(ns: string, key: string, value: JsonValue): Promise<StateEntry> {
    assertKey(key);
    const entry: StateEntry = { key, value: JSON.parse(encodeValue(key, value)) as JsonValue, updatedAt: stateTimestamp(this.now()) };
    await this.locked(ns, () => {
      const entries = this.read(ns);
      const i = entries.findIndex((e) => e.key === key);
      if (i >= 0) entries[i] = entry;
      else entries.push(entry);
      this.write(this.stateFile(ns), entries);
    });
    return entry;
  }

  async del(ns: string, key: string): Promise<boolean> {
    assertKey(key);
    if (!(await this.get(ns, key))) return false;
    return this.locked(ns, () => {
      const entries = this.read(ns);
      const kept = entries.filter((e) => e.key !== key);
      if (kept.length === entries.length) return false;
      this.write(this.stateFile(ns), kept);
      return true;
    });
  }

  async list(ns: string): Promise<StateEntry[]> {
    return sortEntries(this.read(ns));
  }

  async checkpoint(ns: string, name: string): Promise<CheckpointInfo> {
    const file = this.checkpointFile(ns, name);
    const atMs = this.now();
    const keys = await this.locked(ns, () => {
      const entries = this.read(ns);
      this.write(file, entries, atMs);
      return entries.length;
    });
    return { name, at: stateTimestamp(atMs), keys };
  }

  async restore(ns: string, name: string): Promise<CheckpointInfo> {
    const file = this.checkpointFile(ns, name);
    return this.locked(ns, () => {
      const entries = readEntries(file);
      if (!entries) throw noCheckpoint(ns, name);
      const at = stateTimestamp(Math.round(statSync(file).mtimeMs));
      this.write(this.stateFile(ns), entries);
      return { name, at, keys: entries.length };
    });
  }

  private readCheckpoints(ns: string): { name: string; at: string; entries: StateEntry[] }[] {
    const dir = path.join(this.nsDir(ns), CHECKPOINT_DIR);
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch (e) {
      if (isMissing(e)) return [];
      throw new StateBackendError(`cannot read ${dir}: ${(e as Error).message}`, { cause: e });
    }
    const found: { name: string; at: string; entries: StateEntry[] }[] = [];
    for (const f of files) {
      const name = f.slice(0, -'.json'.length);
      if (!f.endsWith('.json') || name.startsWith('.') || !name) continue;
      const file = path.join(dir, f);
      const entries = readEntries(file);
      if (!entries) continue; // deleted meanwhile
      // Milliseconds are rounded: a time set through utimes can come back a nanosecond short.
      found.push({ name, at: stateTimestamp(Math.round(statSync(file).mtimeMs)), entries });
    }
    return sortCheckpoints(found);
  }

  async checkpoints(ns: string): Promise<CheckpointInfo[]> {
    return this.readCheckpoints(ns).map((c) => ({ name: c.name, at: c.at, keys: c.entries.length }));
  }

  async namespaces(): Promise<string[]> {
    let names: string[];
    try {
      names = readdirSync(this.location);
    } catch (e) {
      if (isMissing(e)) return [];
      throw new StateBackendError(`cannot read ${this.location}: ${(e as Error).message}`, { cause: e });
    }
    const found: string[] = [];
    for (const ns of names.sort()) {
      try {
        assertName('namespace', ns);
        if (!statSync(path.join(this.location, ns)).isDirectory()) continue;
      } catch {
        continue;
      }
      if (this.read(ns).length > 0 || this.readCheckpoints(ns).length > 0) found.push(ns);
    }
    return found;
  }

  async exportNamespace(ns: string): Promise<NamespaceDump> {
    return {
      ns,
      entries: sortEntries(this.read(ns)),
      checkpoints: this.readCheckpoints(ns).map((c) => ({ ...c, entries: sortEntries(c.entries) })),
    };
  }

  async importNamespace(dump: NamespaceDump): Promise<void> {
    await this.locked(dump.ns, () => {
      const dir = path.join(this.nsDir(dump.ns), CHECKPOINT_DIR);
      for (const old of this.readCheckpoints(dump.ns)) unlinkSync(path.join(dir, `${old.name}.json`));
      for (const c of dump.checkpoints) {
        const atMs = parseStateTime(c.at);
        this.write(this.checkpointFile(dump.ns, c.name), c.entries, Number.isNaN(atMs) ? this.now() : atMs);
      }
      this.write(this.stateFile(dump.ns), dump.entries);
    });
  }

  async close(): Promise<void> {
    // Nothing is held open between calls.
  }
}
