/**
 * The JSON state backend on real files: the legacy layout read and written as it is, atomic private
 * files, and two real processes writing one namespace without losing an update.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { StateBackendError } from '../src/errors.js';
import { JsonStateBackend } from '../src/state/jsonState.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// The repo's copy of ../shared/fixtures/legacy, so a clone alone runs the tests.
const LEGACY = path.join(root, 'test', 'fixtures', 'legacy', 'json-backend', '.claude', 'state');
const WRITER = path.join(root, 'test', 'fixtures', 'state', 'json-writer.mjs');

/** A writable copy of the legacy fixture (its files are read-only). */
function copyLegacy(): string {
  const dir = path.join(tempDir(), 'state');
  cpSync(LEGACY, dir, { recursive: true });
  const walk = (p: string) => {
    chmodSync(p, statSync(p).isDirectory() ? 0o755 : 0o644);
    if (statSync(p).isDirectory()) for (const f of readdirSync(p)) walk(path.join(p, f));
  };
  walk(dir);
  return dir;
}

const mode = (p: string) => statSync(p).mode & 0o777;

describe('JSON state backend', () => {
  it('reads the legacy json-backend directory as it is', async () => {
    const s = new JsonStateBackend(copyLegacy());
    expect(await s.namespaces()).toEqual(['workflow-123']);
    expect(await s.list('workflow-123')).toEqual([
      { key: 'completed_tasks', value: ['scout', 'plan'], updatedAt: '2026-01-01T10:05:00' },
      { key: 'current_phase', value: 'building', updatedAt: '2026-01-01T10:00:00' },
      { key: 'metadata', value: { timestamp: '2024-01-01', user: 'dev' }, updatedAt: '2026-01-01T10:06:00' },
    ]);
    expect((await s.checkpoints('workflow-123')).map((c) => [c.name, c.keys])).toEqual([['after_planning', 2]]);
  });

  it('writes in the same layout: other keys and their legacy timestamps stay as they were', async () => {
    const dir = copyLegacy();
    const s = new JsonStateBackend(dir, () => Date.UTC(2026, 1, 3, 4, 5, 6, 7));
    const file = path.join(dir, 'workflow-123', 'state.json');
    await s.set('workflow-123', 'current_phase', 'testing');
    const written = JSON.parse(readFileSync(file, 'utf8'));
    expect(written).toEqual({
      current_phase: { value: 'testing', timestamp: '2026-02-03T04:05:06.007+00:00' },
      completed_tasks: { value: ['scout', 'plan'], timestamp: '2026-01-01T10:05:00' },
      metadata: { value: { timestamp: '2024-01-01', user: 'dev' }, timestamp: '2026-01-01T10:06:00' },
    });
    expect(readFileSync(file, 'utf8')).toBe(`${JSON.stringify(written, null, 2)}\n`);

    // Restoring the legacy checkpoint makes state.json exactly the checkpoint file's content.
    await s.restore('workflow-123', 'after_planning');
    const checkpointFile = path.join(dir, 'workflow-123', 'checkpoints', 'after_planning.json');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(JSON.parse(readFileSync(checkpointFile, 'utf8')));
    // The fixture itself is untouched.
    expect(JSON.parse(readFileSync(path.join(LEGACY, 'workflow-123', 'state.json'), 'utf8')).current_phase.value).toBe('building');
  });

  it('creates private directories and files, and leaves no temporary or lock files behind', async () => {
    const dir = path.join(tempDir(), 'kv');
    const s = new JsonStateBackend(dir);
    await s.set('task-1', 'k', 'v');
    await s.checkpoint('task-1', 'cp');
    await s.del('task-1', 'k');
    const nsDir = path.join(dir, 'task-1');
    expect(mode(nsDir)).toBe(0o700);
    expect(mode(path.join(nsDir, 'checkpoints'))).toBe(0o700);
    expect(mode(path.join(nsDir, 'state.json'))).toBe(0o600);
    expect(mode(path.join(nsDir, 'checkpoints', 'cp.json'))).toBe(0o600);
    expect(readdirSync(nsDir).sort()).toEqual(['checkpoints', 'state.json']);
    expect(readdirSync(path.join(nsDir, 'checkpoints'))).toEqual(['cp.json']);
  });

  it('two processes writing one namespace at once lose no update', async () => {
    const dir = path.join(tempDir(), 'kv');
    const go = path.join(path.dirname(dir), 'go');
    const count = 150;
    const writers = ['a', 'b'].map((label) => {
      const child = spawn(process.execPath, [WRITER, dir, 'shared', label, String(count), go], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      return { out: () => out, err: () => err, exited };
    });
    await waitFor(() => writers.every((w) => w.out().includes('ready')), { what: 'both writers ready' });
    writeFileSync(go, '');
    const codes = await Promise.all(writers.map((w) => w.exited));
    expect(codes, writers.map((w) => w.err()).join('\n')).toEqual([0, 0]);

    const entries = await new JsonStateBackend(dir).list('shared');
    expect(entries.length).toBe(2 * count);
    for (const label of ['a', 'b']) {
      for (let i = 0; i < count; i++) expect(entries.find((e) => e.key === `${label}-${i}`)?.value).toEqual({ label, i });
    }
    expect(existsSync(path.join(dir, 'shared', '.lock'))).toBe(false);
  });

  it('breaks a lock left by a dead process; waits for a live one, then says who holds it', async () => {
    const dir = path.join(tempDir(), 'kv');
    const s = new JsonStateBackend(dir, Date.now, 300);
    await s.set('ns', 'first', 1);
    const lock = path.join(dir, 'ns', '.lock');

    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(lock, JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), at: Date.now(), token: 'dead' }));
    await s.set('ns', 'after-dead-lock', 2);
    expect(existsSync(lock)).toBe(false);

    const live = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(lock, JSON.stringify({ pid: live.pid, host: os.hostname(), at: Date.now(), token: 'live' }));
      const started = Date.now();
      const error = await s.set('ns', 'blocked', 3).catch((e) => e);
      expect(error).toBeInstanceOf(StateBackendError);
      expect(error.message).toContain(`pid ${live.pid}`);
      expect(error.message).toContain(lock);
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      expect(await s.get('ns', 'blocked')).toBeNull();
    } finally {
      live.kill('SIGKILL');
      await new Promise((r) => live.on('exit', r));
    }
    await s.set('ns', 'after-live-lock', 4);
    expect((await s.list('ns')).map((e) => e.key)).toEqual(['after-dead-lock', 'after-live-lock', 'first']);
  });

  it('a damaged state.json is an error naming the file, not an empty namespace', async () => {
    const dir = path.join(tempDir(), 'kv');
    const s = new JsonStateBackend(dir);
    await s.set('ns', 'k', 1);
    const file = path.join(dir, 'ns', 'state.json');
    writeFileSync(file, '{"k": {"value": 1, "timest');
    await expect(s.get('ns', 'k')).rejects.toThrow(StateBackendError);
    await expect(s.set('ns', 'other', 2)).rejects.toThrow(`${file} is not valid JSON`);
    writeFileSync(file, '{"k": 5}');
    await expect(s.list('ns')).rejects.toThrow(/key "k" is not of the form \{"value": …, "timestamp": …\}/);
    expect(readFileSync(file, 'utf8')).toBe('{"k": 5}');
  });
});
