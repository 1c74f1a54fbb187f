/**
 * The `cairn` command as commander parses it: every verb, help and usage errors. src/cairn.ts runs a
 * well-formed read command without it and hands everything else here. Each verb's module loads only
 * when that verb runs. Exit codes (DESIGN §6): 0 success, 1 operational error, 2 usage or config error.
 */
import { createRequire } from 'node:module';
import type * as Commander from 'commander';
import type { GlobalOptions } from './context.js';
import { endCommand } from './endCommand.js';
import { GLOBAL_FLAGS, READ_VERBS } from './readVerbs.js';
import { packageVersion } from '../packageVersion.js';

// commander is CommonJS: required directly it loads a third faster than through its ESM wrapper,
// which Node first scans for export names (cjs-module-lexer).
const { Command, CommanderError, Option } = createRequire(import.meta.url)('commander') as typeof Commander;

const program = new Command('cairn')
  .description('A durable orchestrator for staged work: plan → approve → implement → review → verify.')
  .version(packageVersion(), '-V, --version', 'print the version')
  .showHelpAfterError('(run `cairn --help` for usage)')
  // Each subcommand's help lists --config, --data-dir and --database too (copied to every command added below).
  .configureHelp({ showGlobalOptions: true })
  .exitOverride();
for (const [notation, description] of GLOBAL_FLAGS) program.option(notation, description);
program.option('--list-resumable', 'same as `cairn list-resumable`');

const globals = (): GlobalOptions => program.opts<GlobalOptions>();
// Whether the verb that runs was given --json, so its failure is printed as JSON too (reportFailure.ts).
let isJsonOutput = false;
program.hook('preAction', (_program, verb) => {
  isJsonOutput = verb.opts().json === true;
});
let exitCode = 0;
const collect = (value: string, previous: string[] = []) => [...previous, value];

program
  .command('start')
  .description('run the daemon in the foreground (pm2 and systemd run exactly this)')
  .option('--resume [ids]', 'resume interrupted tasks: all, or only the comma-separated ids (--resume=12,15)')
  .option('--no-resume', 'do not resume interrupted tasks; only list them')
  .option('--concurrency <n>', 'stages run at once')
  .action(async (opts) => {
    exitCode = await (await import('./start.js')).run(opts, globals());
  });

program
  .command('run')
  .description('drive one task in the foreground to completion or its next approval gate')
  .argument('[request]', 'what the task should do')
  .option('--resume <id>', 'continue an existing task instead of submitting a new one')
  .addOption(new Option('--priority <p>', 'priority of a new task').choices(['high', 'medium', 'low']))
  .option('--tag <tag>', 'tag for a new task (repeatable)', collect)
  .option('--json', 'print the task as JSON when done')
  .action(async (request, opts) => {
    exitCode = await (await import('./run.js')).run(request, opts, globals());
  });

program
  .command('submit')
  .description('queue a new task; prints its id')
  .argument('[request]', 'what the task should do; `-` reads it from stdin')
  .option('--file <path>', 'read the request from a file (for requests longer than a command line)')
  .addOption(new Option('--priority <p>', 'high, medium or low').choices(['high', 'medium', 'low']).default('medium'))
  .option('--depends-on <id>', 'a task that must complete first (repeatable)', collect)
  .option('--tag <tag>', 'a tag (repeatable)', collect)
  .option('--by <name>', 'who submits it')
  .option('--json', 'print {"id": N}')
  .action(async (request, opts) => (await import('./submit.js')).run(request, opts, globals()));

program
  .command('init')
  .description('write a starter cairn.config.json and stage scripts into DIR (default: here), then say what to run')
  .argument('[dir]', 'where to write them (created if missing)')
  .action(async (dir) => (await import('./init.js')).run(dir));

program
  .command('service')
  .description('print a pm2 process file or a hardened systemd unit that runs this cairn with your config')
  .argument('<manager>', 'pm2 or systemd')
  .option('--user <name>', 'the account the service runs as (default: you)')
  .action(async (manager, opts) => (await import('./service.js')).run(manager, opts, globals()));

// The read verbs come from one table, which src/cairn.ts also parses without commander.
for (const verb of READ_VERBS) {
  const command = program.command(verb.name).description(verb.description);
  for (const [notation, description] of verb.args) command.argument(notation, description);
  for (const [notation, description] of verb.options) command.option(notation, description);
  command.action(async (...params: unknown[]) => {
    const args = params.slice(0, verb.args.length) as string[];
    await verb.run(args, params[verb.args.length] as Record<string, string | boolean | undefined>, globals());
  });
}

program
  .command('approve')
  .description('approve a task waiting at a gate')
  .argument('<id>', 'task id')
  .option('--by <name>', 'who approves (default: your user name)')
  .option('--comment <text>', 'a comment kept with the approval')
  .option('--json', 'print the task as JSON')
  .action(async (id, opts) => (await import('./decide.js')).approve(id, opts, globals()));

program
  .command('reject')
  .description('reject a task waiting at a gate; the reason goes to the next attempt as feedback')
  .argument('<id>', 'task id')
  .requiredOption('--reason <text>', 'why, handed to the next attempt')
  .option('--by <name>', 'who rejects (default: your user name)')
  .option('--json', 'print the task as JSON')
  .action(async (id, opts) => (await import('./decide.js')).reject(id, opts, globals()));

program
  .command('cancel')
  .description('cancel a task that has not finished, stopping its running stage')
  .argument('<id>', 'task id')
  .option('--reason <text>', 'why')
  .option('--by <name>', 'who cancels')
  .option('--json', 'print the task as JSON')
  .action(async (id, opts) => (await import('./decide.js')).cancel(id, opts, globals()));

program
  .command('retry')
  .description('put a failed task back into the stage that failed')
  .argument('<id>', 'task id')
  .option('--by <name>', 'who retries')
  .option('--json', 'print the task as JSON')
  .action(async (id, opts) => (await import('./decide.js')).retry(id, opts, globals()));

program
  .command('resume')
  .description('queue an interrupted task\'s stage to run again (attempt + 1)')
  .argument('<id>', 'task id')
  .option('--json', 'print the task as JSON')
  .action(async (id, opts) => (await import('./decide.js')).resume(id, opts, globals()));

program
  .command('rewind')
  .description('put a task back to a checkpoint (its history is kept)')
  .argument('<id>', 'task id')
  .requiredOption('--to <checkpoint>', 'workflow_start, after_planning, start_implementation, after_implementation, after_review or after_verification')
  .option('--by <name>', 'who rewinds')
  .option('--json', 'print the task as JSON')
  .action(async (id, opts) => (await import('./decide.js')).rewind(id, opts, globals()));

program
  .command('note')
  .description('record a decision or an insight with a task')
  .argument('<id>', 'task id')
  .option('--decision <text>', 'what was decided')
  .option('--rationale <text>', 'why (with --decision)')
  .option('--impact <level>', 'how much it matters, e.g. high')
  .option('--insight <text>', 'what was learned')
  .option('--category <name>', 'a category (with --insight)')
  .option('--by <name>', 'who notes it')
  .option('--json', 'print the note as JSON')
  .action(async (id, opts) => (await import('./note.js')).run(id, opts, globals()));

program
  .command('views')
  .description('the zero-parse views under the data directory (tasks/*.state, current.state, status/*.md)')
  .command('rebuild')
  .description('write every view again from the database')
  .option('--json', 'print what was written as JSON')
  .action(async (opts) => (await import('./views.js')).rebuild(opts, globals()));

// `cairn state …`: key-value state; the namespace is --ns, else $CAIRN_STATE_NS (handlers in state.ts).
const stateCommand = program.command('state').description('key-value state: namespaced keys with JSON values, and checkpoints');
const nsOption = () => new Option('--ns <namespace>', 'the namespace (default: $CAIRN_STATE_NS)');
for (const [verb, args, description] of [
  ['get', ['<key>'], 'print a key\'s value (a string as it is, anything else as JSON)'],
  ['set', ['<key>', '<value>'], 'set a key; VALUE is stored as JSON when it parses as JSON, else as a string'],
  ['del', ['<key>'], 'delete a key'],
  ['list', [], 'every key of the namespace with its value and time'],
  ['checkpoint', ['<name>'], 'save a whole copy of the namespace under a name'],
  ['restore', ['<name>'], 'make the namespace exactly what a checkpoint holds'],
  ['checkpoints', [], 'the namespace\'s checkpoints, oldest first'],
] as const) {
  const sub = stateCommand.command(verb).description(description).addOption(nsOption()).option('--json', 'machine-readable output');
  for (const arg of args) sub.argument(arg);
  sub.action(async (...params: unknown[]) => {
    const state = (await import('./state.js')) as unknown as Record<string, (...a: unknown[]) => Promise<void>>;
    await state[verb](...params.slice(0, args.length), params[args.length], globals());
  });
}
stateCommand
  .command('migrate')
  .description('copy every namespace and checkpoint from one backend to another (sqlite, sqlite:PATH, postgres, postgres://HOST/DB[?schema=S], json, json:DIR, redis, redis://HOST:PORT/DB)')
  .option('--from <backend>', 'where the state is now')
  .option('--to <backend>', 'where it should go')
  .option('--replace', 'overwrite namespaces the target already holds')
  .option('--json', 'print what was moved as JSON')
  .action(async (opts) => (await import('./state.js')).migrate(opts, globals()));

program
  .command('heartbeat')
  .description('run one heartbeat cycle now: sessions, flags, snapshot if due, retention, drill, history, cycle')
  .option('--json', 'print the cycle\'s report as JSON')
  .action(async (opts) => {
    exitCode = await (await import('./heartbeat.js')).run(opts, globals());
  });

program
  .command('snapshot')
  .description('take a consistent snapshot of the database into state/snapshots/ now')
  .option('--name <name>', 'name it (kept until you remove it), e.g. before_upgrade')
  .option('--json', 'print the snapshot as JSON')
  .action(async (opts) => (await import('./snapshot.js')).run(opts, globals()));

program
  .command('snapshots')
  .description('list the snapshots, newest first')
  .option('--archived', 'include those retention moved to state/archive/')
  .option('--json', 'machine-readable output')
  .action(async (opts) => (await import('./snapshots.js')).run(opts, globals()));

program
  .command('restore')
  .description('put a snapshot back as the database (a pre-restore snapshot is taken first); the daemon must be stopped')
  .argument('[name]', 'the snapshot, as `cairn snapshots` names it')
  .option('--latest', 'the newest snapshot')
  .option('--json', 'print what was restored as JSON')
  .action(async (name, opts) => (await import('./restore.js')).run(name, opts, globals()));

program
  .command('backup')
  .description('write a consistent copy of the database to PATH (SQLite), or a pg_dump (PostgreSQL)')
  .argument('[path]', 'file or directory (default: state/backups/)')
  .option('--json', 'print the backup as JSON')
  .action(async (target, opts) => (await import('./backup.js')).run(target, opts, globals()));

program
  .command('import')
  .description('bring legacy state (an orchestrator tasks .db, an experiment state.yml) into the database')
  .argument('<path>', 'a legacy file or a directory holding them')
  .option('--dry-run', 'report what would be imported; write nothing')
  .option('--json', 'print the report as JSON')
  .action(async (target, opts) => (await import('./import.js')).run(target, opts, globals()));

program
  .command('migrate-store')
  .description('copy a SQLite database into PostgreSQL and verify the copy (several daemons can then share it)')
  .option('--from <source>', 'the database to copy: sqlite:PATH')
  .option('--to <url>', 'the PostgreSQL database: postgres://user@host:5432/database')
  .option('--schema <name>', 'the PostgreSQL schema to copy into (default: ?schema= in the URL, else public)')
  .option('--force', 'replace what the target already holds')
  .option('--json', 'print what was copied as JSON')
  .action(async (opts) => (await import('./migrateStore.js')).run(opts, globals()));

async function main(argv: string[]): Promise<number> {
  try {
    // `cairn --list-resumable [--json]` is the same as the verb.
    const rest = argv.slice(2);
    if (rest.includes('--list-resumable')) {
      const i = rest.indexOf('--list-resumable');
      rest.splice(i, 1, 'list-resumable');
      argv = [...argv.slice(0, 2), ...rest];
    }
    await program.parseAsync(argv);
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already printed its message; help and version are not errors.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0) return 0;
      // A usage error is found before any verb runs: --json anywhere on the line asked for JSON.
      if (argv.includes('--json')) (await import('./reportFailure.js')).writeJsonError('USAGE', e.message.replace(/^error: /, ''));
      return 2;
    }
    return (await import('./reportFailure.js')).reportFailure(e, { json: isJsonOutput });
  }
}

endCommand(await main(process.argv));
