/**
 * Turns the text of an inbox file into task requests, or says exactly what is wrong with it.
 *   *.json         one task object, or an array of them
 *   *.yaml, *.yml  the same in YAML
 *   *.md           the body is the request; optional front matter (--- … ---) gives priority, tags, depends_on
 * A task object is {request, priority?, tags?, depends_on?}; anything else is an error naming its path.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { SubmitRequest } from '../engine/engine.js';
import { InboxFileError } from '../errors.js';

export const INBOX_EXTENSIONS = ['.json', '.yaml', '.yml', '.md'] as const;

const TaskItem = z.strictObject({
  request: z.string().trim().min(1, 'is empty; say what the task should do'),
  priority: z.enum(['high', 'medium', 'low']).optional(),
  tags: z.array(z.string().min(1)).optional(),
  depends_on: z.array(z.number().int().positive()).optional(),
});
const FrontMatter = TaskItem.omit({ request: true });

function describe(error: z.ZodError, prefix: (string | number)[] = []): string {
  return error.issues
    .map((issue) => {
      const where = [...prefix, ...issue.path].map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
      const what = issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.join(', ')}` : issue.message;
      return `${where || '(top level)'}: ${what}`;
    })
    .join('; ');
}

function toRequest(item: z.infer<typeof TaskItem>, request = item.request): SubmitRequest {
  return { request, priority: item.priority, tags: item.tags, dependsOn: item.depends_on };
}

function parseItems(data: unknown): SubmitRequest[] {
  const items = Array.isArray(data) ? data : [data];
  if (items.length === 0) throw new InboxFileError('the file holds an empty list: no tasks in it');
  return items.map((item, i) => {
    const result = TaskItem.safeParse(item);
    if (!result.success) throw new InboxFileError(describe(result.error, Array.isArray(data) ? [i] : []));
    return toRequest(result.data);
  });
}

// An opening `---` line, the front matter (possibly none: `---\n---\n`), and a closing `---` that is a
// whole line: `---body` is body text, not a fence.
const FRONT_MATTER = /^---\r?\n(?:([\s\S]*?)\r?\n)?---(?:\r?\n|$)([\s\S]*)$/;

function parseMarkdown(text: string): SubmitRequest[] {
  const match = FRONT_MATTER.exec(text);
  const body = (match ? match[2] : text).trim();
  if (!body) throw new InboxFileError('the markdown body is empty; the body is the request');
  if (!match) return [{ request: body }];
  let front: unknown;
  try {
    front = parseYaml(match[1] ?? '') ?? {};
  } catch (e) {
    throw new InboxFileError(`the front matter is not valid YAML: ${(e as Error).message}`);
  }
  const result = FrontMatter.safeParse(front);
  if (!result.success) throw new InboxFileError(`front matter ${describe(result.error)}`);
  return [toRequest({ ...result.data, request: body })];
}

/** Parses one inbox file. Pure; throws InboxFileError with the reason. */
export function parseInboxFile(name: string, file: string): SubmitRequest[] {
  // Editors on Windows save UTF-8 with a byte order mark; it is no part of the text.
  const text = file.startsWith('\uFEFF') ? file.slice(1) : file;
  const ext = name.slice(name.lastIndexOf('.')).toLowerCase();
  if (ext === '.md') return parseMarkdown(text);
  if (ext === '.json') {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new InboxFileError(`not valid JSON: ${(e as Error).message}`);
    }
    return parseItems(data);
  }
  if (ext === '.yaml' || ext === '.yml') {
    let data: unknown;
    try {
      data = parseYaml(text);
    } catch (e) {
      throw new InboxFileError(`not valid YAML: ${(e as Error).message}`);
    }
    return parseItems(data);
  }
  throw new InboxFileError(`only ${INBOX_EXTENSIONS.join(', ')} files are read from the inbox`);
}
