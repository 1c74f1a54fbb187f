/**
 * `cairn import PATH`: finds the legacy state under PATH (tasks, notes, key-value namespaces), imports each item at most once (a second
 * import adds nothing and says so), copies the originals into <dataDir>/archive/import-<time>/, and
 * reports what was imported and what was skipped and why. With dryRun nothing is written.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { crashPoint } from '../process/crashPoints.js';
import { policyFromConfig } from '../engine/snapshot.js';
import { ImportError } from '../errors.js';
import type { OnProgress } from '../progressUpdate.js';
import { ensurePrivateDir } from '../store/sqlite.js';
import type { IntakeKey, Store } from '../store/store.js';
import { openStateBackend } from '../state/openStateBackend.js';
import type { StateBackend } from '../state/stateBackend.js';
import { isExperimentState, readExperimentState } from './importExperiment.js';
import { importJsonBackend, importMultiAgent, isMultiAgentState, jsonBackendRoot } from './importKeyValue.js';
import { isOrchestratorDb, readOrchestratorDb } from './importOrchestratorDb.js';
import type { ImportContext, ImportItem } from './importTypes.js';

export interface ImportReport {
  path: string;
  dryRun: boolean;
  sources: { kind: string; path: string }[];
  imported: { label: string; taskId: number | null }[];
  skipped: { label: string; reason: string }[];
  archivedTo: string | null;
}

type Source = { kind: 'orchestrator-tasks' | 'experiment' | 'json-backend' | 'multi-agent-state'; path: string };

/** What PATH holds that cairn can read: the path itself, or what lies up to two levels below it. */
function findSources(root: string): Source[] {
  const classify = (p: string): Source | null => {
    if (!statSync(p).isFile()) return null;
    if (isOrchestratorDb(p)) return { kind: 'orchestrator-tasks', path: p };
    if (isExperimentState(p)) return { kind: 'experiment', path: p };
    return null;
  };
  const classifyDir = (dir: string): Source | null => {
    if (isMultiAgentState(dir)) return { kind: 'multi-agent-state', path: dir };
    const kv = jsonBackendRoot(dir);
    return kv ? { kind: 'json-backend', path: kv } : null;
  };
  if (statSync(root).isFile()) {
    const one = classify(root);
    return one ? [one] : [];
  }
  const own = classifyDir(root);
  if (own) return [own];
  const found: Source[] = [];
  const walk = (dir: string, depth: number) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, entry.name);
      if (entry.isFile()) {
        const s = classify(p);
        if (s) found.push(s);
      } else if (entry.isDirectory()) {
        const d = classifyDir(p);
        if (d) found.push(d);
        else if (depth > 0) walk(p, depth - 1);
      }
    }
  };
  walk(root, 2);
  return found;
}

export async function runImport(
  target: string,
  options: { store: Store; config: Config; dryRun?: boolean; now?: number; onProgress?: OnProgress },
): Promise<ImportReport> {
  const onProgress = options.onProgress;
  const root = path.resolve(target);
  if (!existsSync(root)) throw new ImportError(`${root} does not exist`);
  const now = options.now ?? Date.now();
  const sources = findSources(root);
  if (sources.length === 0) {
    throw new ImportError(
      `${root} holds nothing cairn can import; it reads an orchestrator's tasks .db (tasks and checkpoints tables), ` +
        "an experiment's state.yml, a JSON key-value state directory (<ns>/state.json) and a multi-agent state folder (current_session.json)",
    );
  }
  const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  // Imported tasks are replayed with manual gates: the legacy records say who approved each one.
  const policy = { ...policyFromConfig(options.config), approvals: { plan: 'manual' as const, implementation: 'manual' as const } };
  const ctx: ImportContext = { policy, sessionId: `import-${stamp}`, now };
  const report: ImportReport = { path: root, dryRun: Boolean(options.dryRun), sources, imported: [], skipped: [], archivedTo: null };
  const store = options.store;
  let isSessionRecorded = false;

  const refs = new Map<string, number>();
  // The items this run covers, new or imported before: the identity of what the archive holds.
  const covered: string[] = [];
  const handle = async (item: ImportItem) => {
    if (item.kind === 'skip') return void report.skipped.push({ label: item.label, reason: item.reason });
    covered.push(`${item.intake.source}\0${item.intake.key}`);
    const earlier = await store.findIntake(item.intake);
    if (earlier) {
      if (item.kind === 'task' && item.ref) refs.set(item.ref, earlier[0]);
      const what = item.kind === 'task' ? `imported before as task ${earlier[0]}` : 'imported before';
      return void report.skipped.push({ label: item.label, reason: what });
    }
    if (item.kind === 'notes') {
      if (!options.dryRun) await store.createTasksOnce(item.intake, [], () => item.notes(refs));
      return void report.imported.push({ label: item.label, taskId: null });
    }
    const dependsOn: number[] = [];
    for (const key of item.dependsOnKeys ?? []) {
      const ids = await store.findIntake(key);
      if (!ids && !options.dryRun) return void report.skipped.push({ label: item.label, reason: `its dependency ${key.key} was not imported` });
      if (ids) dependsOn.push(ids[0]);
    }
    if (options.dryRun) return void report.imported.push({ label: item.label, taskId: null });
    if (item.task.lease && !isSessionRecorded) {
      await store.recordEndedSession({ id: ctx.sessionId, pid: process.pid, host: 'import', startedAt: now, lastHeartbeatAt: now, status: 'stopped' });
      isSessionRecorded = true;
    }
    const { task, isNew } = await store.importTask(item.intake, { ...item.task, dependsOn }, item.notes);
    if (item.ref) refs.set(item.ref, task.id);
    if (isNew) report.imported.push({ label: item.label, taskId: task.id });
    else report.skipped.push({ label: item.label, reason: `imported before as task ${task.id}` });
  };

  let stateBackend: StateBackend | null = null;
  try {
    for (const source of sources) {
      const step = `${source.kind} ${path.basename(source.path)}`;
      if (source.kind === 'json-backend' || source.kind === 'multi-agent-state') {
        onProgress?.({ step });
        stateBackend ??= await openStateBackend(options.config, store);
        const outcome =
          source.kind === 'json-backend'
            ? await importJsonBackend(source.path, stateBackend, Boolean(options.dryRun))
            : await importMultiAgent(source.path, stateBackend, store, Boolean(options.dryRun));
        report.imported.push(...outcome.imported.map((i) => ({ label: i.label, taskId: null })));
        report.skipped.push(...outcome.skipped);
        continue;
      }
      const items = source.kind === 'orchestrator-tasks' ? readOrchestratorDb(source.path, ctx) : readExperimentState(source.path, ctx).items;
      for (const [i, item] of items.entries()) {
        await handle(item);
        crashPoint('import-between-tasks');
        onProgress?.({ step, done: i + 1, total: items.length, unit: 'items' });
      }
    }
  } finally {
    await stateBackend?.close();
  }

  // Archived once per set of items, recorded like an intake: a run killed after its last item but
  // before this copy archives on the next run, though that run imports nothing new.
  const archived: IntakeKey = { source: 'import:archive', key: createHash('sha256').update(covered.sort().join('\n')).digest('hex') };
  const isArchiveDue = report.imported.length > 0 || (covered.length > 0 && (await store.findIntake(archived)) === null);
  if (!options.dryRun && isArchiveDue) {
    const archive = path.join(options.config.dataDir, 'archive', `import-${stamp}`);
    ensurePrivateDir(path.dirname(archive));
    ensurePrivateDir(archive);
    onProgress?.({ step: 'copying the originals to the archive' });
    cpSync(root, path.join(archive, path.basename(root)), { recursive: true });
    if (covered.length > 0) await store.createTasksOnce(archived, []);
    report.archivedTo = archive;
  }
  return report;
}
