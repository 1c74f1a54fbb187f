/**
 * better-sqlite3, loaded the cheap way; import the driver from here, not from 'better-sqlite3'.
 * It is CommonJS: required directly it loads in about half the time it takes through `import`, which
 * first scans it and the files it re-exports for export names. And its native addon is handed to it
 * from the path its install puts it at, so `bindings` (which walks the stack and tries a dozen paths
 * to find the addon) is not loaded. A read verb spends a good part of its whole run on these two.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

const require = createRequire(import.meta.url);
const Driver = require('better-sqlite3') as typeof BetterSqlite3;

/** The addon where prebuild-install and node-gyp put it; undefined lets the driver search as it always does. */
function installedAddon(): object | undefined {
  try {
    return require('better-sqlite3/build/Release/better_sqlite3.node') as object;
  } catch {
    return undefined;
  }
}

let addon: object | undefined | null = null;

/** The driver itself (instanceof, statics, SqliteError unchanged); `new` passes the addon unless told another. */
const Database: typeof BetterSqlite3 = new Proxy(Driver, {
  construct(target, [filename, options]: [string?, BetterSqlite3.Options?], newTarget) {
    if (addon === null) addon = installedAddon();
    // The typings say string; the driver also takes the loaded addon itself.
    const nativeBinding = addon as string | undefined;
    const withAddon = nativeBinding && options?.nativeBinding === undefined ? { ...options, nativeBinding } : options;
    return Reflect.construct(target, [filename, withAddon], newTarget);
  },
});

// Types as `import Database from 'better-sqlite3'` gives them: Database.Database, Database.Statement, …
declare namespace Database {
  type Database = BetterSqlite3.Database;
  type Statement<BindParameters extends unknown[] | {} = unknown[], Result = unknown> = BetterSqlite3.Statement<BindParameters, Result>;
  type Options = BetterSqlite3.Options;
  type RunResult = BetterSqlite3.RunResult;
}

export default Database;
