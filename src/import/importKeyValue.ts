/**
 * Imports legacy state that maps to key-value namespaces on the configured state backend:
 *   - a key-value state manager's JSON backend (`<dir>/<ns>/state.json` + `checkpoints/<name>.json`):
 *     each namespace with its keys, timestamps and checkpoints, as it is;
 *   - a multi-agent coordinator's folder (`current_session.json` + `checkpoints/*.json`): namespace
 *     `multi-agent-<session id>` holding the session's fields, its checkpoints kept as state
 *     checkpoints, and an ended session record so `cairn status` knows it existed.
 * A namespace already on the target is left alone and reported, so a second import adds nothing.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ImportError } from '../errors.js';
import { JsonStateBackend } from '../state/jsonState.js';
import { stateTimestamp, type JsonValue, type NamespaceDump, type StateBackend, type StateEntry } from '../state/stateBackend.js';
import type { Store } from '../store/store.js';

export interface KeyValueOutcome {
  imported: { label: string }[];
  skipped: { label: string; reason: string }[];
}

/** The directory holding `<ns>/state.json` folders: the path itself or its `.claude/state`. */
export function jsonBackendRoot(dir: string): string | null {
  for (const candidate of [path.join(dir, '.claude', 'state'), dir]) {
    if (!existsSync(candidate) || !statSync(candidate).isDirectory()) continue;
    const hasNamespace = readdirSync(candidate, { withFileTypes: true }).some(
      (e) => e.isDirectory() && existsSync(path.join(candidate, e.name, 'state.json')),
    );
    if (hasNamespace) return candidate;
  }
  return null;
}

export function isMultiAgentState(dir: string): boolean {
  return existsSync(path.join(dir, 'current_session.json'));
}

async function importDumps(dumps: { label: string; dump: NamespaceDump }[], target: StateBackend, outcome: KeyValueOutcome, dryRun: boolean) {
  const existing = new Set(await target.namespaces());
  for (const { label, dump } of dumps) {
    if (existing.has(dump.ns)) {
      outcome.skipped.push({ label, reason: `namespace ${dump.ns} is already on ${target.kind} state (imported before?); \`cairn state migrate --replace\` overwrites it` });
      continue;
    }
    if (!dryRun) await target.importNamespace(dump);
    outcome.imported.push({ label });
  }
}

export async function importJsonBackend(root: string, target: StateBackend, dryRun: boolean): Promise<KeyValueOutcome> {
  const source = new JsonStateBackend(root, Date.now);
  const outcome: KeyValueOutcome = { imported: [], skipped: [] };
  try {
    const dumps = [];
    for (const ns of await source.namespaces()) {
      const dump = await source.exportNamespace(ns);
      dumps.push({ label: `key-value namespace ${ns} (${dump.entries.length} keys, ${dump.checkpoints.length} checkpoints)`, dump });
    }
    await importDumps(dumps, target, outcome, dryRun);
  } finally {
    await source.close();
  }
  return outcome;
}

function readJson(file: string): Record<string, JsonValue> {
  try {
    const data = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('not a JSON object');
    return data as Record<string, JsonValue>;
  } catch (e) {
    throw new ImportError(`${file} cannot be imported: ${(e as Error).message}`);
  }
}

/** Each top-level field becomes a key, so `cairn state get status --ns …` reads one field. */
function entriesOf(data: Record<string, JsonValue>, at: string): StateEntry[] {
  return Object.keys(data)
    .sort()
    .map((key) => ({ key, value: data[key], updatedAt: at }));
}

const namespaceSafe = (id: string) => id.replace(/[^A-Za-z0-9_.-]/g, '_');

export async function importMultiAgent(dir: string, target: StateBackend, store: Store, dryRun: boolean): Promise<KeyValueOutcome> {
  const session = readJson(path.join(dir, 'current_session.json'));
  const sessionId = typeof session.session_id === 'string' ? session.session_id : path.basename(dir);
  const updatedAt = typeof session.last_update === 'string' ? session.last_update : stateTimestamp();
  const checkpointDir = path.join(dir, 'checkpoints');
  const checkpoints = existsSync(checkpointDir)
    ? readdirSync(checkpointDir)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => {
          const data = readJson(path.join(checkpointDir, f));
          const at = typeof data.timestamp === 'string' ? data.timestamp : updatedAt;
          return { name: namespaceSafe(f.slice(0, -'.json'.length)), at, entries: entriesOf(data, at) };
        })
    : [];
  const ns = `multi-agent-${namespaceSafe(sessionId)}`;
  const outcome: KeyValueOutcome = { imported: [], skipped: [] };
  await importDumps(
    [{ label: `multi-agent session ${sessionId} → namespace ${ns} (${checkpoints.length} checkpoints)`, dump: { ns, entries: entriesOf(session, updatedAt), checkpoints } }],
    target,
    outcome,
    dryRun,
  );
  if (!dryRun && outcome.imported.length) {
    const started = Date.parse(String(session.start_time ?? '')) || Date.now();
    const last = Date.parse(updatedAt) || started;
    // Whatever the file says, that coordinator is not running now: the session is recorded as ended.
    await store.recordEndedSession({ id: sessionId, pid: 0, host: 'imported', startedAt: started, lastHeartbeatAt: last, status: 'stopped' });
  }
  return outcome;
}
