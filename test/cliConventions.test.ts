/**
 * The conventions a user expects of a command-line tool: a version flag, and help that lists the
 * flags every verb takes. Runs the real binary (dist/, built first).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';
import { Workspace } from './helpers/cairnProcess.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

describe('cairn --version and help', () => {
  it('prints package.json\'s version for --version and -V, alone or after a global flag', () => {
    const ws = new Workspace(tempDir());
    for (const args of [['--version'], ['-V'], ['--data-dir', 'elsewhere', '--version']]) {
      const r = ws.cli(args);
      expect(r, args.join(' ')).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
    }
  });

  it('shows the global flags in a subcommand\'s help', () => {
    const ws = new Workspace(tempDir());
    for (const verb of ['show', 'start', 'submit']) {
      const r = ws.cli([verb, '--help']);
      expect(r.code, verb).toBe(0);
      for (const flag of ['--config <file>', '--data-dir <dir>', '--database <url>']) expect(r.stdout, `${verb} --help`).toContain(flag);
    }
  });
});
