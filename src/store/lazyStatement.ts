/**
 * A statement prepared on its first use. The SQLite store names some forty statements; a read verb
 * runs four or five of them, and preparing all the others when it opens the store cost more than
 * its queries.
 */
import type Database from './betterSqlite3.js';

/** What the store calls on its statements; anything else needs the statement itself. */
export interface LazyStatement extends Pick<Database.Statement, 'get' | 'all' | 'run' | 'iterate'> {
  pluck(on?: boolean): LazyStatement;
}

export function lazyStatement(db: Database.Database, sql: string): LazyStatement {
  let statement: Database.Statement | undefined;
  let pluck: boolean | undefined;
  const prepared = (): Database.Statement => {
    if (!statement) {
      statement = db.prepare(sql);
      if (pluck !== undefined) statement.pluck(pluck);
    }
    return statement;
  };
  const lazy: LazyStatement = {
    get: (...params) => prepared().get(...params),
    all: (...params) => prepared().all(...params),
    run: (...params) => prepared().run(...params),
    iterate: (...params) => prepared().iterate(...params),
    pluck(on = true) {
      if (statement) statement.pluck(on);
      else pluck = on;
      return this;
    },
  };
  return lazy;
}
