/** `cairn snapshots`: the snapshots in state/snapshots/ (and, with --archived, state/archive/), newest first. */
import { loadCliConfig, stdio, type GlobalOptions, type Output } from './context.js';
import { table } from './format.js';

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export async function run(opts: { json?: boolean; archived?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const config = await loadCliConfig(global);
  const { locationsOf, requireSqlite } = await import('../snapshots/locations.js');
  requireSqlite(config, 'listing snapshots');
  const { listSnapshots, snapshotJson } = await import('../snapshots/catalog.js');
  const { snapshotsDir, archiveDir } = locationsOf(config);
  const snapshots = [...listSnapshots(snapshotsDir), ...(opts.archived ? listSnapshots(archiveDir, true) : [])].sort((a, b) => b.createdAt - a.createdAt);
  if (opts.json) return io.out(JSON.stringify(snapshots.map(snapshotJson)));
  if (!snapshots.length) return io.out(`no snapshots in ${snapshotsDir}; \`cairn snapshot\` takes one`);
  const rows = [['NAME', 'KIND', 'TAKEN', 'SIZE', 'TASKS', 'SHA256']];
  for (const s of snapshots) {
    rows.push([
      s.name + (s.isArchived ? ' (archived)' : ''),
      s.kind,
      new Date(s.createdAt).toISOString().slice(0, 19).replace('T', ' '),
      formatBytes(s.sizeBytes),
      String(s.tasks),
      s.sha256.slice(0, 12),
    ]);
  }
  io.out(table(rows));
}
