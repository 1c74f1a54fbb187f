/**
 * Checks a snapshot before anyone relies on it: its sha256 against its record, SQLite's
 * integrity_check, that it is a cairn database this binary understands, and how many tasks it holds.
 */
import Database from '../store/betterSqlite3.js';
import { existsSync } from 'node:fs';
import { toError } from '../errors.js';
import { loadMigrations } from '../store/migrate.js';
import { snapshotFile, type SnapshotRecord } from './catalog.js';
import type { OnProgress } from '../progressUpdate.js';
import { sha256OfFile } from './copyDatabase.js';

export interface SnapshotCheck {
  ok: boolean;
  sha256: 'ok' | 'mismatch' | 'missing';
  integrity: string;
  /** Tasks in the snapshot, or null when it could not be read. */
  tasks: number | null;
  /** Tasks the live database held when the snapshot was taken (from its record). */
  expectedTasks: number;
  schemaVersion: number | null;
  problems: string[];
}

/** Opens the snapshot read-only and checks it; `onProgress` hears the hashing. Never throws, never writes. */
export async function verifySnapshot(record: SnapshotRecord, onProgress?: OnProgress): Promise<SnapshotCheck> {
  const file = snapshotFile(record);
  const check: SnapshotCheck = {
    ok: false,
    sha256: 'missing',
    integrity: 'not checked',
    tasks: null,
    expectedTasks: record.tasks,
    schemaVersion: null,
    problems: [],
  };
  if (!existsSync(file)) {
    check.problems.push(`${file} is missing`);
    return check;
  }
  const actual = await sha256OfFile(file, onProgress);
  check.sha256 = actual === record.sha256 ? 'ok' : 'mismatch';
  if (check.sha256 === 'mismatch') {
    check.problems.push(`its sha256 is ${actual.slice(0, 12)}…, not the ${record.sha256.slice(0, 12)}… recorded when it was taken: the file changed or is damaged`);
  }
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    const rows = db.pragma('integrity_check') as { integrity_check: string }[];
    check.integrity = rows.map((r) => r.integrity_check).join('; ');
    if (check.integrity !== 'ok') check.problems.push(`integrity_check says: ${check.integrity.slice(0, 300)}`);
    check.schemaVersion = db.prepare('SELECT coalesce(max(version), 0) FROM schema_migrations').pluck().get() as number;
    const latest = loadMigrations('sqlite').at(-1)?.version ?? 0;
    if (check.schemaVersion > latest) {
      check.problems.push(`it has schema version ${check.schemaVersion}, newer than this cairn understands (${latest}); upgrade cairn first`);
    }
    check.tasks = db.prepare('SELECT count(*) FROM tasks').pluck().get() as number;
    if (check.tasks !== record.tasks) {
      check.problems.push(`it holds ${check.tasks} task(s), but the live database held ${record.tasks} when it was taken`);
    }
  } catch (e) {
    if (check.integrity === 'not checked') check.integrity = toError(e).message;
    check.problems.push(`it cannot be read as a cairn database: ${toError(e).message}`);
  } finally {
    db?.close();
  }
  check.ok = check.problems.length === 0;
  return check;
}
