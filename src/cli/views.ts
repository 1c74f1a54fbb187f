/** `cairn views rebuild`: writes every zero-parse view again from the database. */
import { stdio, withStore, type GlobalOptions, type Output } from './context.js';

export async function rebuild(opts: { json?: boolean }, global: GlobalOptions, io: Output = stdio): Promise<void> {
  await withStore(global, async ({ config, store }) => {
    const { Views } = await import('../views/views.js');
    const result = await new Views(store, config.dataDir, config.heartbeat.staleAfter).rebuild();
    if (opts.json) io.out(JSON.stringify(result));
    else io.out(`rewrote the views of ${result.tasks} task(s), current.state and status/*.md under ${config.dataDir}`);
  });
}
