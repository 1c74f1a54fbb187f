/**
 * The read verbs (show, history, logs, list, list-resumable, status) and the global flags, declared once.
 * main.ts builds its commander commands from this table; readCommand.ts parses a well-formed read
 * command straight from it, so a read never loads commander.
 */
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

const READ_VERB_TABLE: readonly ReadVerb[] = [
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
    name: 'logs',
    description: "a stage run's log: the task's latest run, or the latest attempt of --stage, or --attempt",
    args: [ID_ARG],
    options: [
      ['--stage <stage>', 'plan, implement, review or verify (default: the stage that ran last)'],
      ['--attempt <n>', 'this attempt of the stage (default: its latest)'],
      ['--follow', 'print the log as it grows; ends when the run ends'],
      JSON_FLAG,
    ],
    run: async ([id], opts, global) => (await import('./logs.js')).run(id, opts, global),
  },
  {
    name: 'status',
    description: 'daemon health, task counts and what needs attention',
    args: [],
    options: [JSON_FLAG],
    run: async (_args, opts, global) => (await import('./status.js')).run(opts, global),
  },
];

/** Each read verb opens the store as a reader: a data directory that does not exist is an error, not created. */
export const READ_VERBS: readonly ReadVerb[] = READ_VERB_TABLE.map((verb) => ({
  ...verb,
  run: (args, opts, global) => verb.run(args, opts, { ...global, requireDataDir: true }),
}));
