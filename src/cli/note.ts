/** `cairn note ID --decision TEXT [--rationale T] [--impact I] | --insight TEXT [--category C]` */
import { UsageError } from '../errors.js';
import { actorName, parseTaskId, stdio, withStore, type GlobalOptions, type Output } from './context.js';
import { noteJson } from '../taskJson.js';

export interface NoteOptions {
  decision?: string;
  insight?: string;
  rationale?: string;
  impact?: string;
  category?: string;
  by?: string;
  json?: boolean;
}

export async function run(idArg: string, opts: NoteOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const id = parseTaskId(idArg);
  if ((opts.decision === undefined) === (opts.insight === undefined)) {
    throw new UsageError('note needs exactly one of --decision TEXT or --insight TEXT');
  }
  if (opts.decision !== undefined && opts.category !== undefined) throw new UsageError('--category goes with --insight, not --decision');
  if (opts.insight !== undefined && opts.rationale !== undefined) throw new UsageError('--rationale goes with --decision, not --insight');
  await withStore(global, async ({ config, store }) => {
    const { Engine } = await import('../engine/engine.js');
    const kind = opts.decision !== undefined ? 'decision' : 'insight';
    const note = await new Engine(store, config).note(
      id,
      {
        kind,
        text: (opts.decision ?? opts.insight)!,
        rationale: opts.rationale ?? null,
        impact: opts.impact ?? null,
        category: opts.category ?? null,
      },
      `user:${actorName(opts.by)}`,
    );
    io.out(opts.json ? JSON.stringify(noteJson(note)) : `${kind} recorded with task ${id}`);
  });
}
