/**
 * Imports a hierarchical orchestrator's SQLite file (`tasks` + `checkpoints` tables): one cairn task
 * per row, in the matching state, with its outputs, approvals, rejection feedback and checkpoints;
 * rows that were in progress become interrupted stages that `cairn list-resumable` shows.
 */
import Database from '../store/betterSqlite3.js';
import { createHash } from 'node:crypto';
import type { TaskEvent, TaskPolicy } from '../../machines/task.machine.js';
import type { Priority } from '../store/store.js';
import { buildImportedHistory } from './buildHistory.js';
import type { ImportContext, ImportItem } from './importTypes.js';

interface LegacyRow {
  id: number;
  request: string;
  status: string;
  workflow_state: string;
  created_at: string | null;
  updated_at: string | null;
  plan: string | null;
  implementation: string | null;
  review: string | null;
  verification_result: string | null;
  plan_approved_at: string | null;
  plan_approved_by: string | null;
  plan_rejection_reason: string | null;
  implementation_approved_at: string | null;
  implementation_approved_by: string | null;
  implementation_rejection_reason: string | null;
  error_details: string | null;
  retry_count: number | null;
}

/** The legacy tool's timestamps are UTC without a zone ("2026-02-05 10:00:00"). */
function legacyTime(value: string | null | undefined, fallback: number): number {
  if (!value) return fallback;
  const ms = Date.parse(`${value.replace(' ', 'T')}${/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? '' : 'Z'}`);
  return Number.isFinite(ms) ? ms : fallback;
}

const MILESTONES = [
  'pending',
  'planning',
  'plan_awaiting_approval',
  'implementing',
  'implementation_awaiting_approval',
  'reviewing',
  'verifying',
  'completed',
] as const;

export function isOrchestratorDb(file: string): boolean {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
      if (!tables.includes('tasks') || !tables.includes('checkpoints')) return false;
      const columns = (db.prepare('PRAGMA table_info(tasks)').all() as { name: string }[]).map((c) => c.name);
      return columns.includes('workflow_state') && columns.includes('request');
    } finally {
      db.close();
    }
  } catch {
    return false;
  }
}

/** The events that take a fresh task to where the legacy row stood. */
function stepsFor(row: LegacyRow, policy: TaskPolicy): { steps: { event: TaskEvent; actor: string }[]; isInterrupted: boolean } {
  const created = legacyTime(row.created_at, Date.now());
  const updated = Math.max(created, legacyTime(row.updated_at, created));
  const planApproved = Math.max(created, legacyTime(row.plan_approved_at, created));
  const implApproved = Math.max(planApproved, legacyTime(row.implementation_approved_at, planApproved));
  const steps: { event: TaskEvent; actor: string }[] = [];
  const legacy = 'import:legacy-orchestrator';
  // Mirrors the machine's attempt counters, so each synthesised result names the run it completes.
  const attempts = { plan: 0, implement: 0, review: 0, verify: 0 };
  const run = (stage: keyof typeof attempts, output: unknown, at: number) => {
    steps.push({ event: { type: 'STAGE_SUCCEEDED', stage, attempt: ++attempts[stage], output, at }, actor: legacy });
  };

  const isFailed = row.status === 'failed';
  const isInProgress = row.status === 'in_progress';
  // A rejected plan still "awaiting approval" while in progress is being planned again.
  const isReplanning = isInProgress && row.workflow_state === 'plan_awaiting_approval' && Boolean(row.plan_rejection_reason);
  const isReimplementing =
    isInProgress && row.workflow_state === 'implementation_awaiting_approval' && Boolean(row.implementation_rejection_reason);
  let target = MILESTONES.indexOf(row.workflow_state as (typeof MILESTONES)[number]);
  if (target < 0) target = 0;
  if (isReplanning) target = MILESTONES.indexOf('planning');
  if (isReimplementing) target = MILESTONES.indexOf('implementing');

  const reach = (state: (typeof MILESTONES)[number]) => target >= MILESTONES.indexOf(state);
  if (reach('planning')) steps.push({ event: { type: 'START', at: created }, actor: legacy });
  if (row.plan_rejection_reason && (reach('plan_awaiting_approval') || isReplanning)) {
    run('plan', row.plan, created);
    steps.push({ event: { type: 'REJECT', reason: row.plan_rejection_reason, by: 'legacy', at: created }, actor: legacy });
  }
  if (reach('plan_awaiting_approval')) run('plan', row.plan, planApproved);
  if (reach('implementing')) {
    steps.push({ event: { type: 'APPROVE', by: row.plan_approved_by ?? 'legacy', comment: null, at: planApproved }, actor: legacy });
  }
  if (row.implementation_rejection_reason && (reach('implementation_awaiting_approval') || isReimplementing)) {
    run('implement', row.implementation, implApproved);
    steps.push({ event: { type: 'REJECT', reason: row.implementation_rejection_reason, by: 'legacy', at: implApproved }, actor: legacy });
  }
  if (reach('implementation_awaiting_approval')) run('implement', row.implementation, implApproved);
  if (reach('reviewing')) {
    steps.push({ event: { type: 'APPROVE', by: row.implementation_approved_by ?? 'legacy', comment: null, at: implApproved }, actor: legacy });
  }
  if (reach('verifying')) run('review', { verdict: 'approve', comments: row.review ?? '' }, updated);
  if (reach('completed')) run('verify', row.verification_result, updated);

  const stageOf: Partial<Record<(typeof MILESTONES)[number], 'plan' | 'implement' | 'review' | 'verify'>> = {
    planning: 'plan',
    implementing: 'implement',
    reviewing: 'review',
    verifying: 'verify',
  };
  const stage = stageOf[MILESTONES[target]];
  if (isFailed && stage) {
    // The old tool gave up on this stage: record it as failing its last allowed attempts.
    const attempt = attempts[stage];
    for (let i = 1; i <= policy.stageAttempts; i++) {
      steps.push({
        event: {
          type: 'STAGE_FAILED',
          stage,
          attempt: attempt + i,
          reason: 'error',
          message: row.error_details ?? 'failed in the legacy orchestrator',
          output: stage === 'verify' ? (row.verification_result ?? undefined) : undefined,
          at: updated,
        },
        actor: legacy,
      });
    }
  }
  if (row.status === 'cancelled' && target < MILESTONES.indexOf('completed')) {
    steps.push({ event: { type: 'CANCEL', reason: row.error_details, by: 'legacy', at: updated }, actor: legacy });
  }
  return { steps, isInterrupted: isInProgress && Boolean(stage) };
}

const PRIORITY: Priority = 'medium';

export function readOrchestratorDb(file: string, ctx: ImportContext): ImportItem[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT * FROM tasks ORDER BY id').all() as LegacyRow[];
    const checkpoints = db.prepare('SELECT task_id, checkpoint_name, checkpoint_data, created_at FROM checkpoints ORDER BY id').all() as {
      task_id: number;
      checkpoint_name: string;
      checkpoint_data: string | null;
      created_at: string | null;
    }[];
    return rows.map((row): ImportItem => {
      const key = createHash('sha256').update(JSON.stringify(row)).digest('hex');
      const label = `orchestrator task ${row.id} (${row.status}, ${row.workflow_state})`;
      try {
        const { steps, isInterrupted } = stepsFor(row, ctx.policy);
        const history = buildImportedHistory({
          request: row.request,
          priority: PRIORITY,
          tags: ['imported'],
          dependsOn: [],
          policy: ctx.policy,
          createdAt: legacyTime(row.created_at, ctx.now),
          updatedAt: legacyTime(row.updated_at, ctx.now),
          importedFrom: {
            kind: 'orchestrator-tasks',
            file,
            id: row.id,
            status: row.status,
            workflow_state: row.workflow_state,
            retry_count: row.retry_count,
            error_details: row.error_details,
            checkpoints: checkpoints
              .filter((c) => c.task_id === row.id)
              .map((c) => ({ name: c.checkpoint_name, data: c.checkpoint_data, at: c.created_at })),
          },
          steps,
          interrupted: isInterrupted ? { sessionId: ctx.sessionId, at: legacyTime(row.updated_at, ctx.now) } : undefined,
        });
        return { kind: 'task', label, intake: { source: 'import:orchestrator-tasks', key }, task: history };
      } catch (e) {
        return { kind: 'skip', label, reason: (e as Error).message };
      }
    });
  } finally {
    db.close();
  }
}
