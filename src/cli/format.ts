/** The human renderings of the JSON shapes in src/taskJson.ts: tables and task details. Pure. */
import type { TaskRecord, TransitionRecord } from '../store/store.js';
import { iso, type taskDetailJson } from '../taskJson.js';

/** `text` on one line, at most `width` code points, so an emoji (two UTF-16 units) is never cut in half. */
function truncate(text: string, width: number): string {
  const codePoints = Array.from(text.replace(/\s+/g, ' '));
  return codePoints.length > width ? `${codePoints.slice(0, width - 1).join('')}…` : codePoints.join('');
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n');
}

export function renderTaskList(tasks: TaskRecord[]): string {
  if (tasks.length === 0) return 'no tasks match';
  const rows = [['ID', 'STATE', 'STATUS', 'PRIORITY', 'UPDATED', 'REQUEST']];
  for (const t of tasks) {
    rows.push([String(t.id), t.state, t.status, t.priority, iso(t.updatedAt)!.slice(0, 19).replace('T', ' '), truncate(t.request, 60)]);
  }
  return table(rows);
}

function renderValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  return text.split('\n').map((l) => `    ${l}`).join('\n');
}

export function renderTaskDetail(detail: ReturnType<typeof taskDetailJson>): string {
  const lines = [
    `task ${detail.id}: ${detail.request}`,
    `  state      ${detail.state} (${detail.status})`,
    `  priority   ${detail.priority}${detail.tags.length ? `   tags: ${detail.tags.join(', ')}` : ''}`,
    `  created    ${detail.created_at}   updated ${detail.updated_at}`,
  ];
  if (detail.depends_on.length) lines.push(`  depends on ${detail.depends_on.join(', ')}`);
  lines.push(`  attempts   ${Object.entries(detail.attempts).map(([s, n]) => `${s} ${n}`).join(', ')}`);
  if (detail.lease) lines.push(`  lease      held by session ${detail.lease.owner} until ${detail.lease.expires_at}`);
  if (detail.next_run && !detail.lease) {
    lines.push(`  next       ${detail.next_run.stage} attempt ${detail.next_run.attempt}${detail.next_run.not_before ? ` not before ${detail.next_run.not_before}` : ''}`);
  }
  if (detail.error_details) lines.push(`  error      ${detail.error_details.message}`);
  for (const [key, value] of Object.entries(detail.outputs)) {
    if (value !== null) lines.push(`  ${key}:`, renderValue(value));
  }
  if (detail.approvals.length) {
    lines.push('  approvals:');
    for (const a of detail.approvals) lines.push(`    ${a.at}  ${a.gate} ${a.decision} by ${a.by}${a.comment ? `: ${a.comment}` : ''}`);
  }
  if (detail.feedback.length) {
    lines.push('  feedback:');
    for (const f of detail.feedback) lines.push(`    ${f.at}  ${f.source} (${f.stage}): ${truncate(f.text, 100)}`);
  }
  if (detail.notes.length) {
    lines.push('  notes:');
    for (const n of detail.notes) {
      const extra = [n.rationale && `because ${n.rationale}`, n.impact && `impact ${n.impact}`, n.category && `category ${n.category}`].filter(Boolean).join('; ');
      lines.push(`    ${n.at}  ${n.kind}${n.stage ? ` (${n.stage}#${n.attempt})` : ''}: ${n.text}${extra ? ` (${extra})` : ''}`);
    }
  }
  if (detail.checkpoints.length) lines.push(`  checkpoints: ${detail.checkpoints.map((c) => c.name).join(', ')}`);
  if (detail.runs.length) {
    lines.push('  runs:');
    for (const r of detail.runs) {
      const ended = r.outcome === null ? 'running' : `${r.outcome}${r.exit_code !== null ? ` (exit ${r.exit_code})` : r.signal ? ` (${r.signal})` : ''}`;
      lines.push(`    ${r.started_at}  ${r.stage} attempt ${r.attempt}: ${ended}${r.log ? `  log ${r.log}` : ''}`);
    }
  }
  return lines.join('\n');
}

export function renderHistory(history: TransitionRecord[]): string {
  const rows = [['SEQ', 'AT', 'FROM', 'TO', 'EVENT', 'ACTOR']];
  for (const h of history) {
    const e = h.event as { type: string; stage?: string; attempt?: number };
    const detail = e.stage ? `${e.type} ${e.stage}#${e.attempt}` : e.type;
    rows.push([String(h.seq), iso(h.at)!.slice(0, 23).replace('T', ' '), h.from ?? '-', h.to, detail, h.actor]);
  }
  return table(rows);
}
