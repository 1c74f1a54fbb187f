/**
 * What a read verb cannot go under, timed beside `cairn show` in the CLI scenario: load the SQLite
 * driver the way cairn does, open the database, run one query, print it. With `--commander`, also
 * load commander as cairn's CLI does and parse a one-command program first.
 */
import { createRequire } from 'node:module';
import type * as Commander from 'commander';
import Database from '../src/store/betterSqlite3.js';

const [dbFile, id, withCommander] = process.argv.slice(2);
if (withCommander === '--commander') {
  const { Command } = createRequire(import.meta.url)('commander') as typeof Commander;
  const program = new Command('floor');
  program.command('show').argument('<id>').option('--json').action(() => {});
  program.parse(['show', id, '--json'], { from: 'user' });
}
const db = new Database(dbFile, { readonly: true, fileMustExist: true });
process.stdout.write(`${JSON.stringify(db.prepare('SELECT * FROM tasks WHERE id = ?').get(Number(id)))}\n`);
db.close();
