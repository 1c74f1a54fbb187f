/**
 * The one atomic writer (src/writeFileAtomic.ts) the JSON key-value backend, the views and the config
 * cache share: the target is replaced whole, private (0600) whatever the umask or the old file's mode,
 * and a failed write leaves no temporary file behind. (That a power cut keeps the old or the new
 * content cannot be shown here; the fsyncs are in the code.)
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../src/writeFileAtomic.js';
import { tempDir } from './helpers/tmp.js';

const modeOf = (file: string) => statSync(file).mode & 0o777;

describe.each([{ fsync: true }, { fsync: false }])('writeFileAtomic (fsync: $fsync)', ({ fsync }) => {
  const umask = process.umask();
  afterEach(() => void process.umask(umask));

  it('replaces the file whole: a shorter content leaves nothing of the longer one', () => {
    const dir = tempDir();
    const file = path.join(dir, 'state.json');
    writeFileAtomic(file, 'x'.repeat(100_000), { fsync });
    writeFileAtomic(file, '{"a":1}\n', { fsync });
    expect(readFileSync(file, 'utf8')).toBe('{"a":1}\n');
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it('writes multi-byte text whole', () => {
    const file = path.join(tempDir(), 'views.md');
    const text = '😀 é ✓\n'.repeat(50_000);
    writeFileAtomic(file, text, { fsync });
    expect(readFileSync(file, 'utf8')).toBe(text);
  });

  it('makes the file 0600 whatever the umask, and when it replaces a 0644 file', () => {
    const dir = tempDir();
    const fresh = path.join(dir, 'fresh');
    process.umask(0o277); // would leave 0400 of the 0600 openSync asks for
    writeFileAtomic(fresh, 'one', { fsync });
    expect(modeOf(fresh)).toBe(0o600);
    process.umask(umask);

    const shared = path.join(dir, 'shared');
    writeFileSync(shared, 'old');
    chmodSync(shared, 0o644);
    writeFileAtomic(shared, 'new', { fsync });
    expect(modeOf(shared)).toBe(0o600);
    expect(readFileSync(shared, 'utf8')).toBe('new');
  });

  it('sets the modification time when asked', () => {
    const file = path.join(tempDir(), 'dated');
    writeFileAtomic(file, 'x', { fsync, mtimeMs: Date.UTC(2026, 0, 2, 3, 4, 5) });
    expect(statSync(file).mtimeMs).toBe(Date.UTC(2026, 0, 2, 3, 4, 5));
  });

  it('removes its temporary file when the rename fails, and leaves the target as it was', () => {
    const dir = tempDir();
    const target = path.join(dir, 'taken');
    mkdirSync(target); // a directory where the file should go: the rename fails
    writeFileSync(path.join(target, 'inside'), 'kept');
    expect(() => writeFileAtomic(target, 'new', { fsync })).toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(readdirSync(dir)).toEqual(['taken']);
    expect(readFileSync(path.join(target, 'inside'), 'utf8')).toBe('kept');
  });

  it('throws, creating nothing, when the directory is missing', () => {
    const dir = tempDir();
    expect(() => writeFileAtomic(path.join(dir, 'missing', 'f'), 'x', { fsync })).toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual([]);
  });
});
