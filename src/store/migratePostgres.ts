/**
 * Forward-only migrations for PostgreSQL (`migrations/postgres/NNNN_name.sql`), the same numbering as
 * SQLite's. All missing ones are applied in one transaction that first takes a transaction-scoped
 * advisory lock for the schema, so daemons starting together queue up and the last ones find nothing
 * to do; each number is recorded in that same transaction. A schema newer than this binary is refused.
 */
import type { PoolClient } from 'pg';
import { StoreError } from '../errors.js';
import { loadMigrations } from './migrate.js';

/** First key of cairn's advisory locks (the second is the schema's hash): "cairn" in ASCII, as an int4. */
const LOCK_CLASS = 0x636169;

/** `"name"`, with embedded quotes doubled. Pure. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

async function appliedVersions(client: PoolClient, schema: string): Promise<number[] | null> {
  const { rows } = await client.query<{ found: string | null }>('SELECT to_regclass($1) AS found', [
    `${quoteIdent(schema)}.schema_migrations`,
  ]);
  if (rows[0].found === null) return null;
  const applied = await client.query<{ version: number }>(`SELECT version FROM ${quoteIdent(schema)}.schema_migrations`);
  return applied.rows.map((r) => r.version);
}

function refuseNewer(applied: number[], latest: number, location: string): void {
  const found = Math.max(0, ...applied);
  if (found > latest) {
    throw new StoreError(
      `${location} has schema version ${found}, newer than this cairn understands (${latest}); ` +
        'upgrade cairn, or point it at another database or schema.',
    );
  }
}

/**
 * Brings `schema` up to date, creating it if needed. Writes to the database; the client's search_path
 * must already name `schema`. Cheap when nothing is missing: one read, no lock.
 */
export async function applyPostgresMigrations(client: PoolClient, schema: string, location: string): Promise<void> {
  const migrations = loadMigrations('postgres');
  const latest = migrations.at(-1)?.version ?? 0;
  const before = await appliedVersions(client, schema);
  if (before) {
    refuseNewer(before, latest, location);
    if (migrations.every((m) => before.includes(m.version))) return;
  }
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_CLASS, schema]);
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${quoteIdent(schema)}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${quoteIdent(schema)}.schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    // Re-read under the lock: another daemon may have applied them while this one waited.
    const applied = (await appliedVersions(client, schema)) ?? [];
    refuseNewer(applied, latest, location);
    // Every missing version is applied, not only those above the highest: numbers are the order, not a watermark.
    for (const migration of migrations.filter((m) => !applied.includes(m.version))) {
      await client.query(migration.sql);
      await client.query(`INSERT INTO ${quoteIdent(schema)}.schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, [
        migration.version,
        migration.name,
        Date.now(),
      ]);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}
