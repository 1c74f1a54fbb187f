#!/usr/bin/env node
/**
 * The `cairn` executable. A read command written out in full (`cairn show 12 --json`) runs here,
 * parsed by node's parseArgs (cli/readCommand.ts); every other command, and any read command
 * parseArgs would not take exactly as written (help, a typo, a missing id), goes to the commander
 * program in cli/main.ts, which owns help and usage errors.
 *
 * The build bundles this file with what a read verb loads into dist/src/cairn.cjs (scripts/bundleCli.mjs):
 * one CommonJS file and a few chunks start about 15 ms sooner than twenty ES modules plus commander.
 */
import { endCommand } from './cli/endCommand.js';
import { readCommand } from './cli/readCommand.js';
import { packageVersion } from './packageVersion.js';

const argv = process.argv.slice(2);
// `cairn --version` alone is answered here, without loading commander; main.ts answers any other spelling.
const isVersion = argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V');
const command = isVersion ? null : readCommand(argv);
if (isVersion) {
  process.stdout.write(`${packageVersion()}\n`);
} else if (command) {
  command.verb.run(command.args, command.opts, command.global).then(
    () => endCommand(0),
    async (e: unknown) => {
      endCommand((await import('./cli/reportFailure.js')).reportFailure(e, { json: command.opts.json === true }));
    },
  );
} else {
  void import('./cli/main.js');
}
