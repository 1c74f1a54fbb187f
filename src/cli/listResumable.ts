/** `cairn list-resumable`: tasks whose stage was interrupted (its session is gone or its lease expired). */
import { stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { table } from './format.js';
import { iso, taskSummaryJson } from '../taskJson.js';

export async function run(opts: { json?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  await withStore(global, async ({ store }) => {
    const { markGoneSessions } = await import('../process/sessions.js');
    const { loadCliConfig } = await import('./context.js');
    const config = await loadCliConfig(global);
    // A daemon killed with -9 never said so: check for dead sessions before answering.
    await markGoneSessions(store, Date.now(), config.heartbeat.staleAfter);
    const tasks = await store.findResumable(Date.now());
    const rows = tasks.map((t) => ({
      ...taskSummaryJson(t),
      stage: t.runStage,
      attempt: t.runAttempt,
      session: t.lease?.owner ?? null,
      lease_expires_at: iso(t.lease?.expiresAt),
    }));
    if (opts.json) return io.out(JSON.stringify(rows));
    if (!rows.length) return io.out('no interrupted tasks');
    io.out(table([['ID', 'STATE', 'STAGE', 'ATTEMPT', 'SESSION', 'REQUEST'], ...rows.map((r) => [String(r.id), r.state, String(r.stage), String(r.attempt), String(r.session).slice(0, 8), r.request.slice(0, 50)])]));
    io.err('`cairn start` resumes them (or `cairn resume ID` one at a time); each interrupted stage runs again with attempt + 1');
  });
}
