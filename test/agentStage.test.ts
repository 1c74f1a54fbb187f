/**
 * examples/agents/: a real `cairn start` runs tasks through the agent wrapper and the stub agent with
 * the shipped agents.config.json. The agents print progress on stdout (the review one prose around its
 * verdict); the wrapper hands cairn the result through CAIRN_OUTPUT, so the outputs are clean and the
 * noise is in the logs. A review with no verdict fails with what it wrote and what was expected.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const CONFIG = fileURLToPath(new URL('../examples/agents/agents.config.json', import.meta.url));

describe('examples/agents: a coding agent as a stage', () => {
  it('plan → gate → implement → review (changes, then approve) → verify → completed, with the verdict from CAIRN_OUTPUT', async () => {
    const ws = new Workspace(tempDir());
    const env = { CAIRN_CONFIG: CONFIG, CAIRN_DATA_DIR: ws.dataDir, STUB_AGENT_RECORD_DIR: ws.recordDir };
    const cli = (args: string[]) => ws.cli(args, env);
    const json = (args: string[]) => {
      const r = cli([...args, '--json']);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout);
    };
    const daemon = ws.startDaemon([], env);
    try {
      await daemon.waitForLog(/cairn daemon started/);
      const request = 'add a --json flag to `list`; needs changes; $(touch pwned) "quoted"';
      const id = json(['submit', request]).id;
      await waitFor(() => json(['show', String(id)]).state === 'plan_awaiting_approval', { what: 'plan gate', timeoutMs: 15_000 });
      const planned = json(['show', String(id)]);
      // The result only: the progress the agent printed is not in the output.
      expect(planned.outputs.plan).toBe(`1. Read the code the request touches.\n2. Make the change: ${request}\n3. Add a test.`);
      const planLog = readFileSync(path.join(ws.dataDir, 'logs', String(id), 'plan-1.log'), 'utf8');
      expect(planLog).toContain('● Thinking');
      // The task text reached the agent verbatim, inside its prompt on stdin; nothing ran it.
      expect(readFileSync(path.join(ws.recordDir, 'prompt-plan-1.md'), 'utf8')).toContain(`## Request\n\n${request}\n`);
      expect(existsSync(path.join(ws.dir, 'pwned'))).toBe(false);

      expect(cli(['approve', String(id)]).code).toBe(0);
      await waitFor(() => json(['show', String(id)]).state === 'completed', { what: 'completed', timeoutMs: 20_000 });
      const done = json(['show', String(id)]);
      expect(done.outputs.review).toEqual({ verdict: 'approve', comments: 'looks good' });
      expect(done.outputs.verification).toBe('Ran the checks: all passed.');
      const path_ = json(['history', String(id)]).map((h: any) => h.to);
      expect(path_).toEqual([
        // approvals.implementation is auto in the example: no stop at that gate.
        'pending', 'planning', 'plan_awaiting_approval', 'implementing', 'reviewing', 'implementing', 'reviewing', 'verifying', 'completed',
      ]);
      // The first review's comments went back to the agent as feedback, in its next prompt.
      expect(readFileSync(path.join(ws.recordDir, 'prompt-implement-2.md'), 'utf8')).toContain('- review (review): add a test for the empty case');
      // The review agent's prose went to the log, not into the verdict.
      const reviewLog = readFileSync(path.join(ws.dataDir, 'logs', String(id), 'review-2.log'), 'utf8');
      expect(reviewLog).toContain('The structure is sensible');
      expect(reviewLog).toContain('written to CAIRN_OUTPUT');
      // Recorded outputs leave no files behind.
      expect(existsSync(path.join(ws.dataDir, 'runs')) ? readdirSync(path.join(ws.dataDir, 'runs')) : []).toEqual([]);

      // A review agent that gives no verdict: the review fails, saying what it got and what it needed.
      const bad = json(['submit', 'tidy the docs; no verdict']).id;
      await waitFor(() => json(['show', String(bad)]).state === 'plan_awaiting_approval', { what: 'plan gate', timeoutMs: 15_000 });
      expect(cli(['approve', String(bad)]).code).toBe(0);
      await waitFor(() => json(['show', String(bad)]).state === 'failed', { what: 'failed review', timeoutMs: 20_000 });
      const failed = json(['show', String(bad)]).error_details;
      expect(failed).toMatchObject({ stage: 'review', reason: 'output' });
      const expected = 'review wrote no verdict to its CAIRN_OUTPUT file; it must write {"verdict":"approve"|"request_changes","comments":"…"} (it wrote: ';
      expect(failed.message.startsWith(expected), failed.message).toBe(true);
      // The first 200 bytes of what it wrote (here the agent's progress, then its prose), cut short.
      const shown = failed.message.slice(expected.length);
      expect(shown.startsWith('● Reading the request\n')).toBe(true);
      expect(shown).toContain('I read the plan and the changes.');
      expect(shown.endsWith('…)')).toBe(true);
      expect(Buffer.byteLength(shown.slice(0, -2))).toBeLessThanOrEqual(200);
      expect(shown).not.toContain('whether they are tidy');
    } finally {
      await daemon.kill('SIGTERM');
    }
  }, 60_000);
});
