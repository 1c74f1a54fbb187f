/** `cairn heartbeat`: one heartbeat cycle now, as the daemon's cron would run it (without a session of its own). */
import { createCliEngine, stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { table } from './format.js';

/** Returns the exit code: 1 when a part failed (it is also recorded for `cairn status`). */
export async function run(opts: { json?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<number> {
  return withStore(global, async ({ config, store }) => {
    const { Heartbeat } = await import('../daemon/heartbeat.js');
    const { createLogger } = await import('../daemon/logger.js');
    const { engine, done } = await createCliEngine({ config, store });
    // Logs go to stderr: stdout carries the report.
    const heartbeat = new Heartbeat({ store, config, engine, logger: createLogger({ destination: 2 }), now: Date.now });
    const report = (await heartbeat.runCycle())!;
    await done();
    if (opts.json) {
      io.out(
        JSON.stringify({
          started_at: new Date(report.startedAt).toISOString(),
          finished_at: new Date(report.finishedAt).toISOString(),
          ok: report.ok,
          parts: report.parts,
          flags: report.flags,
        }),
      );
    } else {
      const rows = report.parts.map((p) => [
        `  ${p.name}`,
        p.ok ? (p.skipped ? 'skipped' : 'ok') : 'FAILED',
        p.error ?? p.skipped ?? (p.detail ? JSON.stringify(p.detail) : ''),
      ]);
      const lines = [`heartbeat ${report.ok ? 'ok' : 'had failures'} in ${report.finishedAt - report.startedAt} ms`, table(rows)];
      if (report.flags.length) lines.push('flags:', table(report.flags.map((f) => [`  ${f.kind}`, f.message])));
      io.out(lines.join('\n'));
    }
    const failed = report.parts.filter((p) => !p.ok);
    if (failed.length) io.err(`cairn: heartbeat part${failed.length > 1 ? 's' : ''} ${failed.map((p) => `${p.name} (${p.error})`).join(', ')} failed; the other parts ran`);
    return failed.length ? 1 : 0;
  });
}
