/** `cairn import PATH [--dry-run]`: legacy JSON/YAML/SQLite state into the database. */
import { stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { progressLine } from './progress.js';

export async function run(target: string, opts: { dryRun?: boolean; json?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  await withStore(global, async ({ config, store }) => {
    const { runImport } = await import('../import/runImport.js');
    const progress = progressLine('import');
    const report = await runImport(target, { store, config, dryRun: opts.dryRun, onProgress: progress.update }).finally(() => progress.end());
    if (opts.json) return io.out(JSON.stringify(report));
    const lines = [`${report.dryRun ? 'would import' : 'imported'} from ${report.path} (${report.sources.map((s) => s.kind).join(', ')}):`];
    for (const i of report.imported) lines.push(`  + ${i.label}${i.taskId ? ` → task ${i.taskId}` : ''}`);
    for (const s of report.skipped) lines.push(`  - ${s.label}: skipped, ${s.reason}`);
    lines.push(
      `${report.imported.length} imported, ${report.skipped.length} skipped` +
        (report.archivedTo ? `; originals copied to ${report.archivedTo}` : report.dryRun ? '; nothing was written (--dry-run)' : ''),
    );
    io.out(lines.join('\n'));
  });
}
