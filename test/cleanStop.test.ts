/**
 * A graceful stop is quiet: no warning and no error in the log. A stage that finished during the
 * shutdown grace used to make the views write current.state after the store had closed
 * ("could not write current.state: The database connection is not open") on every such stop.
 */
import { describe, expect, it } from 'vitest';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

describe('a graceful stop', () => {
  it('while a stage finishes during the grace period logs no warning or error', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig({ shutdownGraceMs: 10_000 }, { plan: { STAGE_SLEEP: '1' } });
    const daemon = ws.startDaemon();
    await daemon.waitForLog(/cairn daemon started/);
    const id = ws.submit('finish while stopping');
    await waitFor(() => ws.ledger().find((l) => l.stage === 'plan'), { what: 'plan started' });
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    // The plan finished inside the grace, so its result was recorded before the stop.
    expect(ws.show(id).state).toBe('plan_awaiting_approval');
    expect(daemon.lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([]);
    expect(daemon.stderr).toBe('');
  });
});
