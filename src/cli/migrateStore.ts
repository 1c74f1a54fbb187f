/**
 * `cairn migrate-store --from sqlite:PATH --to postgres://… [--force]`: copies a SQLite database into
 * PostgreSQL (src/migrateStore/copyStore.ts) and verifies it. Refuses a target that already holds tasks unless
 * --force (which replaces them), and either side while a daemon still runs on it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { redactUrl } from '../redactUrl.js';
import { StoreError, UsageError } from '../errors.js';
import type { SessionRecord, Store } from '../store/store.js';
import { loadCliConfig, stdio, type GlobalOptions, type Output } from './context.js';
import { progressLine } from './progress.js';

export interface MigrateStoreOptions {
  from?: string;
  to?: string;
  schema?: string;
  force?: boolean;
  json?: boolean;
}

const USAGE = 'use it as `cairn migrate-store --from sqlite:PATH --to postgres://user@host:5432/database`';

/** `sqlite:PATH` (relative to the working directory) → the file path. Pure. */
export function parseSqliteSource(from: string | undefined, cwd: string): string {
  if (!from) throw new UsageError(`migrate-store needs --from; ${USAGE}`);
  const match = /^sqlite:(.+)$/.exec(from);
  if (!match) throw new UsageError(`--from ${from} is not a SQLite database; ${USAGE}`);
  return path.resolve(cwd, match[1]);
}

function parseTarget(to: string | undefined): string {
  if (!to) throw new UsageError(`migrate-store needs --to; ${USAGE}`);
  if (!/^postgres(ql)?:\/\//.test(to)) throw new UsageError(`--to ${redactUrl(to)} is not a PostgreSQL URL; ${USAGE}`);
  return to;
}

async function refuseLiveDaemons(store: Store, staleAfterMs: number): Promise<void> {
  const { isSessionGone } = await import('../process/sessions.js');
  const now = Date.now();
  const live = (await store.listSessions({ status: 'active' })).filter((s: SessionRecord) => !isSessionGone(s, now, staleAfterMs));
  if (live.length) {
    const which = live.map((s) => `session ${s.id} (pid ${s.pid} on ${s.host})`).join(', ');
    throw new StoreError(`a daemon is running on ${store.location}: ${which}; stop it before migrating, then run migrate-store again`);
  }
}

export async function run(opts: MigrateStoreOptions, global: GlobalOptions, io: Output = stdio): Promise<void> {
  const file = parseSqliteSource(opts.from, process.cwd());
  const url = parseTarget(opts.to);
  if (!existsSync(file)) throw new StoreError(`there is no SQLite database at ${file}; check the path after --from sqlite:`);
  const config = await loadCliConfig(global);
  const { openSqliteStore } = await import('../store/sqlite.js');
  const { openPostgresStore } = await import('../store/postgres.js');
  const { copyRows, countTargetRows, verifyCopy } = await import('../migrateStore/copyStore.js');
  const source = openSqliteStore(file, { durability: config.durability });
  try {
    const target = await openPostgresStore(url, { schema: opts.schema });
    try {
      await refuseLiveDaemons(source, config.heartbeat.staleAfter);
      await refuseLiveDaemons(target, config.heartbeat.staleAfter);
      const existing = await countTargetRows(target);
      if (Object.keys(existing).length && !opts.force) {
        const held = Object.entries(existing).map(([table, n]) => `${n} ${table}`).join(', ');
        throw new StoreError(
          `${target.location} is not empty (${held}); migrate-store writes only into an empty database. ` +
            'Point --to at another database or schema, or pass --force to replace what is there.',
        );
      }
      const progress = progressLine('migrate-store');
      let copied: Awaited<ReturnType<typeof copyRows>>;
      let tasksVerified: number;
      try {
        copied = await copyRows(source, target, { replace: Boolean(opts.force), onProgress: progress.update });
        tasksVerified = await verifyCopy(source, target, copied.tables, progress.update);
      } finally {
        progress.end();
      }
      const { tables, skipped } = copied;
      for (const s of skipped) io.err(`not copied: ${s.rows} row(s) of ${s.table} (${s.reason}); they stay in ${file}`);
      if (opts.json) {
        io.out(JSON.stringify({ from: file, to: target.location, tables, tasks_verified: tasksVerified, replaced: existing, skipped }));
      } else {
        const counts = Object.entries(tables).map(([table, n]) => `${n} ${table}`).join(', ');
        io.out(`copied ${counts} from ${file} to ${target.location}`);
        io.out(`verified: row counts match, and the history and detail checksums of all ${tasksVerified} task(s)`);
        io.err('point the daemons at it with --database URL, CAIRN_DATABASE_URL or store: {"kind": "postgres", "url": …} in the config');
      }
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}
