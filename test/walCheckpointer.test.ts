/**
 * The daemon's WAL checkpoints run on a background thread: commits no longer checkpoint themselves,
 * yet what they write reaches the database file; closing the store stops the thread.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { openSqliteStore } from '../src/store/sqlite.js';
import { tempDir, waitFor } from './helpers/tmp.js';

describe('background WAL checkpoints', () => {
  it('copy committed pages into the database file while commits do not checkpoint themselves', async () => {
    const file = path.join(tempDir(), 'cairn.db');
    const store = openSqliteStore(file);
    store.checkpointInBackground(() => {});
    expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    const before = statSync(file).size;
    // About 1 MB of notes, one commit each. In WAL mode only a checkpoint writes the database file,
    // and this connection no longer runs any: the file grows only if the background thread does.
    const insert = store.db.prepare(
      "INSERT INTO notes (task_id, scope, kind, text, source, actor, at) VALUES (NULL, 'test', 'insight', ?, 'cli', 'test', 0)",
    );
    for (let i = 0; i < 2000; i++) store.db.transaction(() => insert.run(`note ${i} ${'x'.repeat(500)}`)).immediate();
    await waitFor(() => statSync(file).size > before + 1_000_000, { what: 'the database file to receive the checkpointed pages', timeoutMs: 10_000 });
    await store.close();
    expect(store.db.open).toBe(false);
  });

  it('when the thread dies, commits checkpoint for themselves again and the daemon is told once', async () => {
    const file = path.join(tempDir(), 'cairn.db');
    const store = openSqliteStore(file);
    const told: string[] = [];
    store.checkpointInBackground((message) => told.push(message));
    expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    // The thread ends as it would if it ran out of memory: no error event, only its exit.
    await (store as unknown as { checkpointer: { worker: Worker } }).checkpointer.worker.terminate();
    await waitFor(() => told.length > 0, { what: 'the daemon to be told background checkpoints stopped' });
    expect(told).toEqual([expect.stringMatching(/^background WAL checkpoints stopped: their thread exited/)]);
    expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    // With nobody else checkpointing, commits past 1,000 WAL pages copy them into the file themselves.
    const before = statSync(file).size;
    const insert = store.db.prepare(
      "INSERT INTO notes (task_id, scope, kind, text, source, actor, at) VALUES (NULL, 'test', 'insight', ?, 'cli', 'test', 0)",
    );
    for (let i = 0; i < 2000; i++) store.db.transaction(() => insert.run(`note ${i} ${'x'.repeat(500)}`)).immediate();
    expect(statSync(file).size).toBeGreaterThan(before + 1_000_000);
    await store.close();
    expect(told).toHaveLength(1);
  });
});
