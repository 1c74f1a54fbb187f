/**
 * Statements prepared on their first use. The SQLite store names some forty statements; a read verb
 * runs four or five of them, and preparing all the others when it opens the store cost more than its
 * queries. Each property is a getter that prepares its statement once and then replaces itself with
 * it, so the write path calls better-sqlite3's statement directly, with no wrapper in between.
 */
import type Database from './betterSqlite3.js';

/** SQL whose statement returns the first column's value instead of a row object. */
export interface Plucked {
  pluck: string;
}

export function plucked(sql: string): Plucked {
  return { pluck: sql };
}

export function preparedOnFirstUse<K extends string>(db: Database.Database, specs: Record<K, string | Plucked>): Record<K, Database.Statement> {
  const statements = {} as Record<K, Database.Statement>;
  for (const name of Object.keys(specs) as K[]) {
    const spec = specs[name];
    Object.defineProperty(statements, name, {
      configurable: true,
      enumerable: true,
      get() {
        const statement = typeof spec === 'string' ? db.prepare(spec) : db.prepare(spec.pluck).pluck();
        Object.defineProperty(statements, name, { value: statement, enumerable: true });
        return statement;
      },
    });
  }
  return statements;
}
