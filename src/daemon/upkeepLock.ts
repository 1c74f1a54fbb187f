/**
 * The heartbeat's named locks in the store's own database (`maintenance_locks`: sqlite 0002, postgres
 * 0008), so that of several processes on one database only one runs an upkeep at a time. A lock is a
 * row with an owner and an expiry: it outlives a holder killed mid-upkeep until it expires, or until
 * the heartbeat sees the holder's session is no longer active and takes it over (heartbeat.ts).
 */
import type pg from 'pg';
import type { Store } from '../store/store.js';
import { lockHolder, tryLock, unlock } from './heartbeatLog.js';

export interface LockTable {
  /** Takes `name` for `owner` until `expiresAt` unless another owner holds it unexpired at `now`; whether we hold it now. Writes. */
  tryLock(name: string, owner: string, now: number, expiresAt: number): Promise<boolean>;
  /** Who holds `name` (expired or not), or null. Reads. */
  holder(name: string): Promise<string | null>;
  /** Frees `name` if `owner` holds it. Writes. */
  unlock(name: string, owner: string): Promise<void>;
}

/** The store's lock table: the SQLite file's, or the PostgreSQL schema's. */
export function lockTableOf(store: Store): LockTable {
  const connection = store.connection();
  if (connection.kind === 'postgres') return postgresLocks(connection.pool);
  const { db } = connection;
  return {
    tryLock: async (name, owner, now, expiresAt) => tryLock(db, name, owner, now, expiresAt - now),
    holder: async (name) => lockHolder(db, name),
    unlock: async (name, owner) => unlock(db, name, owner),
  };
}

/**
 * On PostgreSQL the check and the take are one upsert: two daemons racing for a free lock both reach
 * ON CONFLICT, PostgreSQL serialises them on the row, and the WHERE is re-checked against the winner's
 * row, so exactly one of them gets a row back.
 */
function postgresLocks(pool: pg.Pool): LockTable {
  return {
    async tryLock(name, owner, now, expiresAt) {
      const { rowCount } = await pool.query(
        `INSERT INTO maintenance_locks (name, owner, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE maintenance_locks.owner = excluded.owner OR maintenance_locks.expires_at <= $4
         RETURNING owner`,
        [name, owner, expiresAt, now],
      );
      return rowCount === 1;
    },
    async holder(name) {
      const { rows } = await pool.query<{ owner: string }>('SELECT owner FROM maintenance_locks WHERE name = $1', [name]);
      return rows[0]?.owner ?? null;
    },
    async unlock(name, owner) {
      await pool.query('DELETE FROM maintenance_locks WHERE name = $1 AND owner = $2', [name, owner]);
    },
  };
}
