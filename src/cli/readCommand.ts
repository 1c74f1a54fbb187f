/**
 * Parses a read command written out in full (`cairn show 12 --json`) with node's parseArgs, from the
 * same table commander builds those verbs from (readVerbs.ts). Anything parseArgs does not take exactly
 * as written (help, an unknown flag, a missing or extra argument) is left to commander, which owns
 * help and usage errors: this parser only ever says "not mine".
 */
import { parseArgs } from 'node:util';
import type { GlobalOptions } from './context.js';
import { GLOBAL_FLAGS, READ_VERBS, type Flag, type ReadVerb } from './readVerbs.js';

export interface ReadCommand {
  verb: ReadVerb;
  args: string[];
  opts: Record<string, string | boolean | undefined>;
  global: GlobalOptions;
}

/** `--data-dir <dir>` → `data-dir`: the name parseArgs gives the flag. */
function longName(notation: string): string {
  return notation.split(' ')[0].slice(2);
}

/** `data-dir` → `dataDir`: the name commander gives the flag's value. */
function attributeName(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function parseOptions(flags: readonly Flag[]) {
  return Object.fromEntries(flags.map(([notation]) => [longName(notation), { type: notation.includes('<') ? ('string' as const) : ('boolean' as const) }]));
}

const GLOBAL_NAMES = new Set(GLOBAL_FLAGS.map(([notation]) => longName(notation)));

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
  for (const [key, value] of Object.entries(parsed.values)) (GLOBAL_NAMES.has(key) ? global : opts)[attributeName(key)] = value;
  return { verb, args, opts, global: global as GlobalOptions };
}
