/** `cairn restore NAME|--latest`: a snapshot back as the live database, after a pre-restore snapshot. */
import { SnapshotError, UsageError } from '../errors.js';
import { loadCliConfig, stdio, type GlobalOptions, type Output } from './context.js';
import { progressLine } from './progress.js';

export async function run(name: string | undefined, opts: { json?: boolean; latest?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  if ((name === undefined) === !opts.latest) {
    throw new UsageError('restore needs a snapshot: `cairn restore NAME` (as `cairn snapshots` lists them) or `cairn restore --latest`, not both');
  }
  const config = await loadCliConfig(global);
  const { locationsOf, requireSqlite } = await import('../snapshots/locations.js');
  requireSqlite(config, 'cairn restore');
  const { findSnapshot, listSnapshots, snapshotJson } = await import('../snapshots/catalog.js');
  const locations = locationsOf(config);
  const record = name !== undefined ? findSnapshot(locations, name) : listSnapshots(locations.snapshotsDir)[0];
  if (!record) throw new SnapshotError(`there is no snapshot in ${locations.snapshotsDir} to restore; \`cairn snapshot\` takes one`);
  const { restoreDatabaseSnapshot } = await import('../snapshots/restoreDatabaseSnapshot.js');
  const progress = progressLine('restore');
  const report = await restoreDatabaseSnapshot(config, record, Date.now(), progress.update).finally(() => progress.end());
  if (opts.json) {
    return io.out(JSON.stringify({ restored: snapshotJson(report.restored), pre_restore: report.preRestore && snapshotJson(report.preRestore), set_aside: report.setAside, tasks: report.tasks }));
  }
  io.out(
    `restored snapshot ${record.name} (taken ${new Date(record.createdAt).toISOString()}): the database now holds its ${report.tasks} task(s).\n` +
      (report.preRestore
        ? `the database as it was is snapshot ${report.preRestore.name}; \`cairn restore ${report.preRestore.name}\` undoes this restore.\n`
        : `the damaged database could not be copied; its files were renamed to ${report.setAside.join(', ')}.\n`) +
      'interrupted stages resume when the daemon starts (`cairn start`).',
  );
}
