/** `cairn submit "<request>" | --file F | -`: inserts a pending task and prints its id on stdout. */
import type { Priority } from '../store/store.js';
import { readRequestText } from './requestText.js';
import { actorName, createCliEngine, parseTaskId, stdio, withStore, type GlobalOptions, type Output } from './context.js';

export interface SubmitOptions {
  priority?: string;
  dependsOn?: string[];
  tag?: string[];
  json?: boolean;
  by?: string;
  /** A file holding the request (for requests longer than a command line). */
  file?: string;
}

/** `requestArg` is the text, `-` for stdin, or undefined with `opts.file`. */
export async function run(requestArg: string | undefined, opts: SubmitOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const dependsOn = (opts.dependsOn ?? []).flatMap((v) => v.split(',')).filter(Boolean).map(parseTaskId);
  const request = await readRequestText(requestArg, opts.file);
  await withStore(global, async ({ config, store }) => {
    const { engine, done } = await createCliEngine({ config, store });
    const task = await engine.submit(
      { request, priority: opts.priority as Priority | undefined, tags: opts.tag, dependsOn },
      `user:${actorName(opts.by)}`,
    );
    await done();
    if (opts.json) io.out(JSON.stringify({ id: task.id }));
    else {
      io.out(String(task.id));
      io.err(`task ${task.id} submitted (${task.priority} priority); a running daemon picks it up (\`cairn start\`), or run it now with \`cairn run --resume ${task.id}\``);
    }
  });
}
