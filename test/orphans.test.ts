/**
 * Ending a dead daemon's leftover stage processes touches only that installation's run: run ids
 * ("1.plan.1") repeat across cairn installations on one host, and a group id can be reused once its
 * members are gone.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { defaultConfig } from '../src/config.js';
import { endOrphanedRun, LeftoverStageProcesses } from '../src/process/leftoverStageProcesses.js';
import { thisHost } from '../src/process/sessions.js';
import { Engine } from '../src/engine/engine.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { isAlive } from './helpers/cairnProcess.js';
import { tempDir, waitFor } from './helpers/tmp.js';

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

  it('a resume pass ends the leftover runs of this host\'s dead sessions, each of them, and leaves another host\'s alone', async () => {
    const dataDir = tempDir();
    const store = openSqliteStore(path.join(dataDir, 'cairn.db'));
    const sleepers: ReturnType<typeof sleeper>[] = [];
    try {
      const engine = new Engine(store, defaultConfig({}, dataDir));
      const now = Date.now();
      await store.createSession({ id: 'here', pid: 1, host: thisHost, at: now });
      await store.createSession({ id: 'there', pid: 1, host: 'another-host', at: now });
      const owners = ['here', 'here', 'there'];
      const tasks: number[] = [];
      for (const owner of owners) {
        const { task } = await engine.start((await engine.submit({ request: `leased by ${owner}` }, 'test')).id, 'test');
        const claim = (await store.claimRun(task.id, owner, now, 60_000))!;
        sleepers.push(sleeper({ CAIRN_RUN_ID: claim.run.runId, CAIRN_DATA_DIR: dataDir }));
        tasks.push(task.id);
      }
      const unclaimed = (await engine.start((await engine.submit({ request: 'no run yet' }, 'test')).id, 'test')).task;
      await waitFor(() => sleepers.every((s) => isAlive(s.pid!)), { what: 'the leftover stages running' });
      await store.endSession('here', 'crashed', now);
      await store.endSession('there', 'crashed', now);

      const leftovers = new LeftoverStageProcesses(store, dataDir);
      const interrupted = new Map((await store.findResumable(now)).map((t) => [t.id, t]));
      expect([...interrupted.keys()]).toEqual(tasks);
      const ended = [];
      for (const id of tasks) ended.push((await leftovers.end(interrupted.get(id)!))?.runId ?? null);
      expect(ended).toEqual([`${tasks[0]}.plan.1`, `${tasks[1]}.plan.1`, null]);
      expect(await leftovers.end(unclaimed)).toBeNull();
      await waitFor(() => !isAlive(sleepers[0].pid!) && !isAlive(sleepers[1].pid!), { what: "this host's leftover stages ended" });
      expect(isAlive(sleepers[2].pid!)).toBe(true); // another host's run: that host ends it
    } finally {
      for (const s of sleepers) if (isAlive(s.pid!)) process.kill(s.pid!, 'SIGKILL');
      await store.close();
    }
  });
});
