/**
 * The read verbs (show, history, list, list-resumable, status) and the global flags, declared once.
 * main.ts builds its commander commands from this table; the `cairn` executable (src/cairn.ts) parses
 * a well-formed read command with node's parseArgs straight from it, so a read never loads commander.
 * Anything parseArgs does not accept as it is goes to commander, which prints help and usage errors.
 */
import { parseArgs } from 'node:util';
import type { GlobalOptions } from './context.js';

/** commander's notation: `--name` is a switch, `--name <value>` takes a value. */
export type Flag = readonly [notation: string, description: string];

export interface ReadVerb {
  name: string;
  description: string;
  /** Required positional arguments, in order, as commander names them (`<id>`). */
  args: readonly Flag[];
  options: readonly Flag[];
  run(args: string[], opts: Record<string, string | boolean | undefined>, global: GlobalOptions): Promise<void>;
}

export const GLOBAL_FLAGS: readonly Flag[] = [
  ['--config <file>', 'config file (default: cairn.config.json or .yaml in this directory)'],
  ['--data-dir <dir>', 'data directory (default: ./state)'],
  ['--database <url>', 'database URL (PostgreSQL); default is SQLite in the data directory'],
];

const JSON_FLAG: Flag = ['--json', 'machine-readable output'];
const ID_ARG: Flag = ['<id>', 'task id'];
const ARCHIVED_FLAG: Flag = ['--archived', 'also look in the history archives (state/archive/history-*.db, history.keepDays)'];

export const READ_VERBS: readonly ReadVerb[] = [
  {
    name: 'list',
    description: 'list tasks',
    args: [],
    options: [
      ['--status <status>', 'pending, in_progress, awaiting_approval, completed, failed or cancelled'],
      ['--state <state>', 'a workflow state, e.g. plan_awaiting_approval'],
      ['--tag <tag>', 'only tasks with this tag'],
      ['--resumable', 'only interrupted tasks'],
      ['--limit <n>', 'at most this many'],
      JSON_FLAG,
    ],
    run: async (_args, opts, global) => (await import('./list.js')).run(opts, global),
  },
  {
    name: 'list-resumable',
    description: 'tasks whose stage was interrupted and can be resumed',
    args: [],
    options: [JSON_FLAG],
    run: async (_args, opts, global) => (await import('./listResumable.js')).run(opts, global),
  },
  {
    name: 'show',
    description: 'a task with its outputs, approvals, checkpoints and runs',
    args: [ID_ARG],
    options: [JSON_FLAG, ARCHIVED_FLAG],
    run: async ([id], opts, global) => (await import('./show.js')).run(id, opts, global),
  },
  {
    name: 'history',
    description: 'every transition of a task, oldest first',
    args: [ID_ARG],
    options: [JSON_FLAG, ARCHIVED_FLAG],
    run: async ([id], opts, global) => (await import('./history.js')).run(id, opts, global),
  },
  {
    name: 'status',
    description: 'daemon health, task counts and what needs attention',
    args: [],
    options: [JSON_FLAG],
    run: async (_args, opts, global) => (await import('./status.js')).run(opts, global),
  },
];

/** `--data-dir <dir>` → `dataDir`, as commander names the option's value. */
export function attributeName(notation: string): string {
  return notation
    .split(' ')[0]
    .replace(/^--/, '')
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export interface ReadCommand {
  verb: ReadVerb;
  args: string[];
  opts: Record<string, string | boolean | undefined>;
  global: GlobalOptions;
}

function parseOptions(flags: readonly Flag[]) {
  return Object.fromEntries(
    flags.map(([notation]) => [notation.split(' ')[0].slice(2), { type: notation.includes('<') ? ('string' as const) : ('boolean' as const) }]),
  );
}

/** The read command `argv` spells exactly, or null for commander to handle. */
export function readCommand(argv: string[]): ReadCommand | null {
  for (const verb of READ_VERBS) {
    if (argv.includes(verb.name)) {
      const command = parseAs(verb, argv);
      if (command) return command;
    }
  }
  return null;
}

function parseAs(verb: ReadVerb, argv: string[]): ReadCommand | null {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: true, options: { ...parseOptions(GLOBAL_FLAGS), ...parseOptions(verb.options) } });
  } catch {
    return null; // help, an unknown flag, a flag without its value: commander says what is wrong
  }
  const [name, ...args] = parsed.positionals;
  if (name !== verb.name || args.length !== verb.args.length) return null;
  const global: Record<string, string | boolean | undefined> = {};
  const opts: Record<string, string | boolean | undefined> = {};
  for (const [key, value] of Object.entries(parsed.values)) {
    const isGlobal = GLOBAL_FLAGS.some(([notation]) => notation.startsWith(`--${key} `));
    (isGlobal ? global : opts)[attributeName(`--${key}`)] = value;
  }
  return { verb, args, opts, global: global as GlobalOptions };
}
