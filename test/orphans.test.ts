/**
 * Ending a dead daemon's leftover stage processes touches only that installation's run: run ids
 * ("1.plan.1") repeat across cairn installations on one host, and a group id can be reused once its
 * members are gone.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { endOrphanedRun } from '../src/daemon/orphans.js';
import { isAlive } from './helpers/cairnProcess.js';
import { waitFor } from './helpers/tmp.js';

function sleeper(env: Record<string, string>) {
  const child = spawn('sleep', ['30'], { env: { ...process.env, ...env }, detached: true, stdio: 'ignore' });
  return child;
}

describe('ending orphaned stage processes', () => {
  it("kills the processes carrying this installation's run, and leaves another installation's run of the same id alone", async () => {
    const mine = sleeper({ CAIRN_RUN_ID: '1.plan.1', CAIRN_DATA_DIR: '/srv/mine/state' });
    const theirs = sleeper({ CAIRN_RUN_ID: '1.plan.1', CAIRN_DATA_DIR: '/srv/theirs/state' });
    try {
      await waitFor(() => isAlive(mine.pid!) && isAlive(theirs.pid!), { what: 'both sleepers running' });
      // The group id recorded for the run is the other installation's live leader: not ours to signal.
      expect(endOrphanedRun({ runId: '1.plan.1', pgid: theirs.pid! }, '/srv/mine/state')).toBe(true);
      await waitFor(() => !isAlive(mine.pid!), { what: 'our leftover stage ended' });
      expect(isAlive(theirs.pid!)).toBe(true);
    } finally {
      for (const c of [mine, theirs]) if (isAlive(c.pid!)) process.kill(c.pid!, 'SIGKILL');
    }
  });
});
