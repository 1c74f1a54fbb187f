/**
 * The key-value state interface (DESIGN §6 `cairn state`): namespaces of keys, each holding a JSON value
 * and the time it was last set, plus named checkpoints (whole copies of a namespace) that can be
 * restored. Four backends implement it (`sqliteState.ts`, `postgresState.ts`, `jsonState.ts`,
 * `redisState.ts`); one contract suite runs against all of them.
 */
import { CheckpointNotFoundError, UsageError } from '../errors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One key as stored. `updatedAt` is an ISO 8601 string, kept verbatim (legacy files have no zone). */
export interface StateEntry {
  key: string;
  value: JsonValue;
  updatedAt: string;
}

export interface CheckpointInfo {
  name: string;
  /** When it was taken (ISO 8601). */
  at: string;
  /** How many keys it holds. */
  keys: number;
}

/** A key as the SQL backends (SQLite, PostgreSQL) store it: the value as JSON text. */
export interface EntryRow {
  key: string;
  value: string;
  updated_at: string;
}

/** A checkpoint as the SQL backends store it: its entries as one JSON text. */
export interface CheckpointRow {
  name: string;
  at: string;
  entries: string;
}

export const entryFromRow = (row: EntryRow): StateEntry => ({ key: row.key, value: JSON.parse(row.value) as JsonValue, updatedAt: row.updated_at });

/** Everything a namespace holds, for migration between backends. */
export interface NamespaceDump {
  ns: string;
  entries: StateEntry[];
  checkpoints: { name: string; at: string; entries: StateEntry[] }[];
}

export interface StateBackend {
  readonly kind: 'sqlite' | 'postgres' | 'json' | 'redis';
  /** Where the state lives (a file, a directory, a URL), for messages. */
  readonly location: string;
  /** The entry, or null when the key is not set. */
  get(ns: string, key: string): Promise<StateEntry | null>;
  /** Sets the key, stamping it with the current time. */
  set(ns: string, key: string, value: JsonValue): Promise<StateEntry>;
  /** Deletes the key; false when it was not set. */
  del(ns: string, key: string): Promise<boolean>;
  /** Every key of the namespace, sorted by key. */
  list(ns: string): Promise<StateEntry[]>;
  /** Saves a whole copy of the namespace under `name`, replacing an older checkpoint of that name. */
  checkpoint(ns: string, name: string): Promise<CheckpointInfo>;
  /** Makes the namespace exactly what checkpoint `name` holds; throws CheckpointNotFoundError if there is none. */
  restore(ns: string, name: string): Promise<CheckpointInfo>;
  /** The namespace's checkpoints, oldest first. */
  checkpoints(ns: string): Promise<CheckpointInfo[]>;
  /** Namespaces that hold at least one key or checkpoint, sorted. */
  namespaces(): Promise<string[]>;
  /** Reads a whole namespace with its checkpoints, timestamps included. */
  exportNamespace(ns: string): Promise<NamespaceDump>;
  /** Replaces a whole namespace (keys and checkpoints) with `dump`, keeping its timestamps. */
  importNamespace(dump: NamespaceDump): Promise<void>;
  close(): Promise<void>;
}

/**
 * Namespace and checkpoint names become directory and file names (json) and key parts (redis), so
 * they are restricted to characters that are safe in both: no `/`, no `:`, no leading dot.
 */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/;

/** Throws UsageError unless `name` is a usable namespace or checkpoint name. Pure. */
export function assertName(kind: 'namespace' | 'checkpoint', name: string): void {
  if (!NAME.test(name)) {
    throw new UsageError(
      `"${name}" is not a valid ${kind} name; use letters, digits, "_", "." and "-" (not first: "." or "-"), at most 200 characters, e.g. task-42`,
    );
  }
}

/** Throws UsageError for an empty key. Any other string is a key. Pure. */
export function assertKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new UsageError('a state key cannot be empty; give it a name, e.g. `cairn state set phase building`');
  if (key.length > 1024) throw new UsageError(`state key "${key.slice(0, 40)}…" is ${key.length} characters long; keys are at most 1024`);
}

/**
 * The time a write is stamped with: UTC, millisecond precision, with an explicit `+00:00` zone rather
 * than `Z`, so Python's `datetime.fromisoformat` (what the legacy JSON tool reads with) parses it on
 * every version. Legacy stamps such as `2026-01-01T10:00:00` are kept as they are.
 */
export function stateTimestamp(ms: number = Date.now()): string {
  return new Date(ms).toISOString().replace(/Z$/, '+00:00');
}

/** A Redis URL without its password, for messages (one rule for every URL: src/redactUrl.ts). */
export { redactUrl } from '../redactUrl.js';

/** Sorts entries by key (code-point order), as every backend returns them. Pure. */
export function sortEntries(entries: StateEntry[]): StateEntry[] {
  return entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Serialises a value for storage, refusing what JSON cannot hold (undefined, functions, cycles). */
export function encodeValue(key: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new UsageError(`the value for state key "${key}" cannot be stored as JSON: ${(e as Error).message}`);
  }
  if (text === undefined) throw new UsageError(`the value for state key "${key}" is ${typeof value}; store JSON (null, booleans, numbers, strings, arrays, objects)`);
  return text;
}

/** A stored time in epoch ms, NaN if it is not a time; a zone-less legacy time is read as UTC. Pure. */
export function parseStateTime(at: string): number {
  return Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(at) ? at : `${at}Z`);
}

/** Orders checkpoints oldest first (ties by name), as every backend lists them. Pure. */
export function sortCheckpoints<T extends { name: string; at: string }>(checkpoints: T[]): T[] {
  const time = (at: string) => {
    const ms = parseStateTime(at);
    return Number.isNaN(ms) ? Number.POSITIVE_INFINITY : ms;
  };
  return checkpoints.sort((a, b) => time(a.at) - time(b.at) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function noCheckpoint(ns: string, name: string): CheckpointNotFoundError {
  return new CheckpointNotFoundError(
    `namespace ${ns} has no checkpoint named ${name}; \`cairn state checkpoints --ns ${ns}\` lists the ones there are`,
  );
}
