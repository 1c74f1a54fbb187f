/**
 * Where `cairn submit` takes its request from: the argument, a file (`--file F`) or stdin (`-`), for
 * requests longer than a command line holds. Reads the file or stdin; throws UsageError when the
 * request is missing, given twice, or empty.
 */
import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';

const HOW = 'give it as an argument (`cairn submit "…"`), in a file (`cairn submit --file request.md`) or on stdin (`cairn submit -`)';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('reading the request from stdin; end it with Ctrl-D\n');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function readRequestFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`--file ${file}: no such file; name a file holding the request`);
    if (code === 'EISDIR') throw new UsageError(`--file ${file} is a directory; name a file holding the request`);
    throw new UsageError(`--file ${file}: cannot read it (${(e as Error).message})`);
  }
}

/** The request text, trimmed; never empty. */
export async function readRequestText(argument: string | undefined, file: string | undefined): Promise<string> {
  if (argument !== undefined && file !== undefined) {
    throw new UsageError(`give the request once: as an argument or with --file, not both (got "${argument.slice(0, 40)}" and --file ${file})`);
  }
  if (argument === undefined && file === undefined) throw new UsageError(`submit needs a request; ${HOW}`);
  const [text, from] =
    file !== undefined ? [await readRequestFile(file), `--file ${file}`] : argument === '-' ? [await readStdin(), 'stdin'] : [argument!, 'the argument'];
  if (text.trim() === '') throw new UsageError(`the request from ${from} is empty; say what the task should do`);
  return text.trim();
}
