/**
 * Imports an experiment tracker's `state.yml`: its tasks (tagged with the experiment id, dependencies
 * kept, in the state they had) and its decisions and insights as notes kept for the experiment.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { TaskEvent } from '../../machines/task.machine.js';
import type { NewNote, Priority } from '../store/store.js';
import { buildImportedHistory } from './buildHistory.js';
import type { ImportContext, ImportItem } from './importTypes.js';

interface ExperimentTask {
  id: string;
  title?: string;
  description?: string;
  status?: string;
  priority?: string;
  depends_on?: string[];
}

interface ExperimentFile {
  experiment_id?: string;
  status?: string;
  current_phase?: string;
  current_task_id?: string;
  checkpoint_path?: string;
  tasks?: ExperimentTask[];
  decisions?: { date?: string; decision?: string; rationale?: string; impact?: string }[];
  insights?: { insight?: string; impact?: string; category?: string; related_task_id?: string }[];
}

export function isExperimentState(file: string): boolean {
  if (!/state\.ya?ml$/.test(file)) return false;
  try {
    const data = parseYaml(readFileSync(file, 'utf8')) as ExperimentFile;
    return typeof data?.experiment_id === 'string' && Array.isArray(data.tasks);
  } catch {
    return false;
  }
}

/** Dependencies first, so each task's dependencies exist when it is inserted. */
function inDependencyOrder(tasks: ExperimentTask[]): ExperimentTask[] {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const done = new Set<string>();
  const ordered: ExperimentTask[] = [];
  const visit = (t: ExperimentTask, path: string[]) => {
    if (done.has(t.id)) return;
    if (path.includes(t.id)) throw new Error(`dependency cycle: ${[...path, t.id].join(' → ')}`);
    for (const dep of t.depends_on ?? []) {
      const d = byId.get(dep);
      if (d) visit(d, [...path, t.id]);
    }
    done.add(t.id);
    ordered.push(t);
  };
  for (const t of tasks) visit(t, []);
  return ordered;
}

function priorityOf(value: string | undefined): Priority {
  return value === 'high' || value === 'low' ? value : 'medium';
}

export function readExperimentState(file: string, ctx: ImportContext): { items: ImportItem[]; experimentId: string; fields: Record<string, unknown> } {
  const data = parseYaml(readFileSync(file, 'utf8')) as ExperimentFile;
  const experimentId = data.experiment_id!;
  const at = ctx.now;
  const items: ImportItem[] = [];
  const known = new Set((data.tasks ?? []).map((t) => t.id));
  for (const t of inDependencyOrder(data.tasks ?? [])) {
    const label = `experiment ${experimentId} task ${t.id} (${t.status ?? 'pending'})`;
    const missing = (t.depends_on ?? []).filter((d) => !known.has(d));
    if (missing.length) {
      items.push({ kind: 'skip', label, reason: `it depends on ${missing.join(', ')}, which the file does not have` });
      continue;
    }
    const steps: { event: TaskEvent; actor: string }[] = [];
    const actor = 'import:experiment';
    const done = { imported: `completed in experiment ${experimentId}` };
    if (t.status === 'completed') {
      steps.push(
        { event: { type: 'START', at }, actor },
        { event: { type: 'STAGE_SUCCEEDED', stage: 'plan', attempt: 1, output: done, at }, actor },
        { event: { type: 'APPROVE', by: 'legacy', comment: 'imported as completed', at }, actor },
        { event: { type: 'STAGE_SUCCEEDED', stage: 'implement', attempt: 1, output: done, at }, actor },
        { event: { type: 'APPROVE', by: 'legacy', comment: 'imported as completed', at }, actor },
        { event: { type: 'STAGE_SUCCEEDED', stage: 'review', attempt: 1, output: { verdict: 'approve', comments: 'imported as completed' }, at }, actor },
        { event: { type: 'STAGE_SUCCEEDED', stage: 'verify', attempt: 1, output: done, at }, actor },
      );
    } else if (t.status === 'in_progress') {
      steps.push({ event: { type: 'START', at }, actor });
    } else if (t.status === 'cancelled') {
      steps.push({ event: { type: 'CANCEL', reason: 'cancelled in the experiment tracker', by: 'legacy', at }, actor });
    }
    const request = [t.title, t.description].filter(Boolean).join('\n\n') || `experiment ${experimentId} task ${t.id}`;
    items.push({
      kind: 'task',
      label,
      ref: t.id,
      intake: { source: 'import:experiment', key: `${experimentId}/${t.id}` },
      dependsOnKeys: (t.depends_on ?? []).map((d) => ({ source: 'import:experiment', key: `${experimentId}/${d}` })),
      task: buildImportedHistory({
        request,
        priority: priorityOf(t.priority),
        tags: [experimentId],
        dependsOn: [],
        policy: ctx.policy,
        createdAt: at,
        importedFrom: { kind: 'experiment', file, experiment_id: experimentId, id: t.id, status: t.status ?? null },
        steps,
        interrupted: t.status === 'in_progress' ? { sessionId: ctx.sessionId, at } : undefined,
      }),
    });
  }
  const decisions = data.decisions ?? [];
  const insights = data.insights ?? [];
  if (decisions.length || insights.length) {
    items.push({
      kind: 'notes',
      label: `experiment ${experimentId}: ${decisions.length} decision(s), ${insights.length} insight(s)`,
      intake: { source: 'import:experiment-notes', key: experimentId },
      notes: (refs) => {
        const base = { scope: experimentId, stage: null, attempt: null, source: 'import' as const, actor: 'import:experiment' };
        const fromDate = (d?: string) => (d && Number.isFinite(Date.parse(d)) ? Date.parse(d) : at);
        const notes: NewNote[] = [];
        for (const d of decisions) {
          if (!d.decision) continue;
          notes.push({ ...base, taskId: null, kind: 'decision', text: d.decision, rationale: d.rationale ?? null, impact: d.impact ?? null, category: null, at: fromDate(d.date) });
        }
        for (const i of insights) {
          if (!i.insight) continue;
          const taskId = i.related_task_id ? (refs.get(i.related_task_id) ?? null) : null;
          notes.push({ ...base, taskId, kind: 'insight', text: i.insight, rationale: null, impact: i.impact ?? null, category: i.category ?? null, at });
        }
        return notes;
      },
    });
  }
  const fields = Object.fromEntries(Object.entries(data).filter(([k]) => !['tasks', 'decisions', 'insights'].includes(k)));
  return { items, experimentId, fields };
}
