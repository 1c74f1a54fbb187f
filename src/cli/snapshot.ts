/** `cairn snapshot [--name N]`: a consistent copy of the database into state/snapshots/, now. */
import { loadCliConfig, stdio, type GlobalOptions, type Output } from './context.js';
import { formatBytes } from './snapshots.js';

export async function run(opts: { json?: boolean; name?: string }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const config = await loadCliConfig(global);
  const { locationsOf, requireSqlite } = await import('../snapshots/locations.js');
  requireSqlite(config, 'cairn snapshot');
  const { openStore } = await import('../store/openStore.js');
  // Opened first so a database that does not exist yet is created and migrated, not copied half-made.
  await (await openStore(config)).close();
  const { takeSnapshot } = await import('../snapshots/takeSnapshot.js');
  const { snapshotJson } = await import('../snapshots/catalog.js');
  const snapshot = await takeSnapshot({ ...locationsOf(config), kind: opts.name === undefined ? 'manual' : 'named', name: opts.name, now: Date.now() });
  if (opts.json) return io.out(JSON.stringify({ ...snapshotJson(snapshot), ms: snapshot.ms }));
  io.out(snapshot.name);
  io.err(
    `snapshot ${snapshot.name} taken: ${snapshot.tasks} task(s), ${formatBytes(snapshot.sizeBytes)}, sha256 ${snapshot.sha256.slice(0, 12)}…, in ${snapshot.ms} ms; ` +
      `\`cairn restore ${snapshot.name}\` brings it back`,
  );
}
