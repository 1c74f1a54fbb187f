/**
 * A config mistake is reported as what it is, at its key path, through the real CLI (exit 2, stderr):
 * a bad duration inside a stage is "not a duration" (a union of stage shapes used to call it unknown
 * keys), a mistyped key anywhere gets the key it was probably meant to be.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir } from './helpers/tmp.js';

const cmd = { run: ['./stages/plan.sh'] };

describe('config messages name the real fault and its key path', () => {
  it.each<[string, unknown, string[]]>([
    ['a stage duration in words', { stages: { plan: { ...cmd, timeout: 'ten minutes' } } }, ['stages.plan.timeout: "ten minutes" is not a duration; write it like "30s"']],
    ['a stage duration that is not text or a number', { stages: { review: { module: './r.mjs', timeout: true } } }, ['stages.review.timeout: not a duration']],
    ['a mistyped stage key', { stages: { plan: { ...cmd, timout: '10m' } } }, ['stages.plan.timout: unknown key `timout` (did you mean `timeout`?)']],
    ['a mistyped program key', { stages: { verify: { rn: ['npm', 'test'] } } }, ['stages.verify.rn: unknown key `rn` (did you mean `run`?)']],
    ['a stage with options but no program', { stages: { plan: { timeout: '1m' } } }, ['stages.plan: timeout without a program: a stage is {"run": [argv…]} or {"module": "file.mjs"}']],
    ['a stage with both forms', { stages: { plan: { ...cmd, module: './p.mjs' } } }, ['stages.plan: a stage has "run" (a command) or "module" (an in-process module), not both']],
    ['a stage written as a string', { stages: { plan: './stages/plan.sh' } }, ['stages.plan: a stage is {"run": [argv…]}']],
    [
      'mistyped keys at every level',
      { concurency: 2, limits: { stageAtempts: 3 }, heartbeat: { stalAfter: '1m' }, snapshots: { keepHourley: 3 } },
      [
        'concurency: unknown key `concurency` (did you mean `concurrency`?)',
        'limits.stageAtempts: unknown key `stageAtempts` (did you mean `stageAttempts`?)',
        'heartbeat.stalAfter: unknown key `stalAfter` (did you mean `staleAfter`?)',
        'snapshots.keepHourley: unknown key `keepHourley` (did you mean `keepHourly`?)',
      ],
    ],
    ['a key like no other lists the keys there are', { limits: { colour: 'red' } }, ['limits.colour: unknown key `colour`; the keys here are stageAttempts, reviewCycles']],
    ['an unknown store kind', { store: { kind: 'mysql' } }, ['store.kind: must be {"kind": "sqlite"} or {"kind": "postgres"']],
  ])('%s', (_, config, messages) => {
    const ws = new Workspace(tempDir());
    writeFileSync(path.join(ws.dir, 'cairn.config.json'), JSON.stringify(config));
    for (const verb of [['list'], ['start']]) {
      const r = ws.cli(verb);
      expect({ verb, code: r.code, stdout: r.stdout }).toEqual({ verb, code: 2, stdout: '' });
      expect(r.stderr).toContain(`invalid config in ${path.join(ws.dir, 'cairn.config.json')}`);
      for (const message of messages) expect(r.stderr).toContain(`  ${message}`);
      expect(r.stderr).not.toMatch(/Invalid input|unknown keys? *$/m);
    }
  });

  it('a bare number for a duration is milliseconds', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ stages: { plan: { run: ['./p.sh'], timeout: 1500 } }, heartbeat: { staleAfter: 60_000 } });
    ws.createDataDir(); // a read verb refuses a data directory that does not exist
    expect(ws.cli(['list']).code).toBe(0);
    const { loadConfig } = await import('../src/loadConfig.js');
    const config = await loadConfig({ cwd: ws.dir, env: { XDG_CACHE_HOME: tempDir('cairn-cache-') } });
    expect(config.stages.plan).toMatchObject({ timeout: 1500 });
    expect(config.heartbeat.staleAfter).toBe(60_000);
  });
});
