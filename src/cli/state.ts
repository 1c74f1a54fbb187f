/**
 * `cairn state get|set|del|list|checkpoint|restore|checkpoints [--ns NS]` and
 * `cairn state migrate --from B --to B`: the key-value state of DESIGN §6 on the backend the config's
 * `state` key selects. The namespace is `--ns`, else `$CAIRN_STATE_NS` (set for every stage program),
 * so a stage script writes `cairn state set phase building` with no flags.
 */
import { StateKeyNotFoundError, UsageError } from '../errors.js';
import type { StateBackend, StateEntry, CheckpointInfo, JsonValue } from '../state/stateBackend.js';
import { loadCliConfig, stdio, type GlobalOptions, type Output } from './context.js';
import { progressLine } from './progress.js';

export interface StateOptions {
  ns?: string;
  json?: boolean;
}

export interface MigrateOptions {
  from?: string;
  to?: string;
  replace?: boolean;
  json?: boolean;
}

/** `--ns`, else CAIRN_STATE_NS; neither is a usage error saying so. */
export function resolveNamespace(opts: StateOptions, env: NodeJS.ProcessEnv = process.env): string {
  const ns = opts.ns ?? env.CAIRN_STATE_NS;
  if (!ns) {
    throw new UsageError('which namespace? pass --ns NS, or set CAIRN_STATE_NS (cairn sets it for stage programs to their task\'s namespace, task-<id>)');
  }
  return ns;
}

/** A command-line value is JSON when it parses as JSON (`42`, `true`, `{"a":1}`, `"quoted"`), else the string itself. Pure. */
export function parseCliValue(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}

const entryJson = (ns: string, e: StateEntry) => ({ ns, key: e.key, value: e.value, updated_at: e.updatedAt });
const checkpointJson = (ns: string, c: CheckpointInfo) => ({ ns, name: c.name, at: c.at, keys: c.keys });

async function withState<T>(global: GlobalOptions, fn: (backend: StateBackend) => Promise<T>): Promise<T> {
  const config = await loadCliConfig(global);
  const { openStateBackend } = await import('../state/openStateBackend.js');
  const backend = await openStateBackend(config);
  try {
    return await fn(backend);
  } finally {
    await backend.close();
  }
}

/** Prints the value (a string as it is, anything else as JSON); a key that is not set is an error (exit 1). */
export async function get(key: string, opts: StateOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const ns = resolveNamespace(opts);
  await withState(global, async (backend) => {
    const entry = await backend.get(ns, key);
    if (!entry) {
      throw new StateKeyNotFoundError(`key "${key}" is not set in namespace ${ns}; \`cairn state list --ns ${ns}\` shows the keys there are`);
    }
    if (opts.json) io.out(JSON.stringify(entryJson(ns, entry)));
    else io.out(typeof entry.value === 'string' ? entry.value : JSON.stringify(entry.value));
  });
}

export async function set(key: string, value: string, opts: StateOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const ns = resolveNamespace(opts);
  await withState(global, async (backend) => {
    const entry = await backend.set(ns, key, parseCliValue(value));
    io.out(opts.json ? JSON.stringify(entryJson(ns, entry)) : `${ns}: ${key} = ${JSON.stringify(entry.value)}`);
  });
}

/** Deleting a key that is not set succeeds (stages run at least once, so a retried `del` must not fail) and says so. */
export async function del(key: string, opts: StateOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const ns = resolveNamespace(opts);
  await withState(global, async (backend) => {
    const deleted = await backend.del(ns, key);
    if (opts.json) io.out(JSON.stringify({ ns, key, deleted }));
    else io.out(deleted ? `${ns}: deleted ${key}` : `${ns}: ${key} was not set; nothing deleted`);
  });
}

export async function list(opts: StateOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const ns = resolveNamespace(opts);
  await withState(global, async (backend) => {
    const entries = await backend.list(ns);
    if (opts.json) return io.out(JSON.stringify(entries.map((e) => entryJson(ns, e))));
    if (!entries.length) return io.out(`namespace ${ns} has no keys`);
    const width = Math.min(32, Math.max(...entries.map((e) => e.key.length)));
    io.out(entries.map((e) => `${e.key.padEnd(width)}  ${JSON.stringify(e.value)}  (${e.updatedAt})`).join('\n'));
  });
}

export async function checkpoint(name: string, opts: StateOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const ns = resolveNamespace(opts);
  await withState(global, async (backend) => {
    const info = await backend.checkpoint(ns, name);
    io.out(opts.json ? JSON.stringify(checkpointJson(ns, info)) : `${ns}: checkpoint ${name} saved (${info.keys} key${info.keys === 1 ? '' : 's'})`);
  });
}

export async function restore(name: string, opts: StateOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const ns = resolveNamespace(opts);
  await withState(global, async (backend) => {
    const info = await backend.restore(ns, name);
    io.out(
      opts.json
        ? JSON.stringify(checkpointJson(ns, info))
        : `${ns}: restored checkpoint ${name} from ${info.at} (${info.keys} key${info.keys === 1 ? '' : 's'})`,
    );
  });
}

export async function checkpoints(opts: StateOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const ns = resolveNamespace(opts);
  await withState(global, async (backend) => {
    const found = await backend.checkpoints(ns);
    if (opts.json) return io.out(JSON.stringify(found.map((c) => checkpointJson(ns, c))));
    if (!found.length) return io.out(`namespace ${ns} has no checkpoints`);
    io.out(found.map((c) => `${c.name}  ${c.at}  ${c.keys} key${c.keys === 1 ? '' : 's'}`).join('\n'));
  });
}

/** Copies every namespace and checkpoint from --from to --to and says what it copied. */
export async function migrate(opts: MigrateOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  if (!opts.from || !opts.to) throw new UsageError('cairn state migrate needs both --from and --to, e.g. --from json:.claude/state --to sqlite');
  const config = await loadCliConfig(global);
  const { describeStateSpec, openStateSpec, parseStateSpec } = await import('../state/openStateBackend.js');
  const { migrateState } = await import('../state/migrateState.js');
  const from = parseStateSpec(opts.from, config);
  const to = parseStateSpec(opts.to, config);
  if (describeStateSpec(from) === describeStateSpec(to)) {
    throw new UsageError(`--from and --to are the same state (${describeStateSpec(from)}); name two different backends or places`);
  }
  const source = await openStateSpec(from, { durability: config.durability });
  try {
    const target = await openStateSpec(to, { durability: config.durability });
    try {
      const progress = progressLine('state migrate');
      const report = await migrateState(source, target, { replace: opts.replace, onProgress: progress.update }).finally(() => progress.end());
      if (opts.json) {
        io.out(JSON.stringify({ from: describeStateSpec(from), to: describeStateSpec(to), ...report }));
        return;
      }
      const lines = report.namespaces.map((n) => `  ${n.ns}: ${n.keys} key${n.keys === 1 ? '' : 's'}, ${n.checkpoints} checkpoint${n.checkpoints === 1 ? '' : 's'}`);
      if (report.replaced.length) lines.push(`  replaced what ${describeStateSpec(to)} held in: ${report.replaced.join(', ')}`);
      io.out(
        [
          `moved ${report.namespaces.length} namespace${report.namespaces.length === 1 ? '' : 's'} (${report.keys} keys, ${report.checkpoints} checkpoints) ` +
            `from ${describeStateSpec(from)} to ${describeStateSpec(to)}; the source is left as it was`,
          ...lines,
        ].join('\n'),
      );
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}
