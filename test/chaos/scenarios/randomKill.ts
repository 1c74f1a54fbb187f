/**
 * kill -9 the daemon at a random moment, over and over, while tasks with 50–500 ms stages flow, and
 * restart it each time. Nothing submitted may be lost, no stage run may be recorded twice, and no
 * stage may run twice at once; the stages re-run because a kill interrupted them are counted.
 */
import path from 'node:path';
import { Workspace } from '../../helpers/cairnProcess.js';
import { cliAsync } from '../cliAsync.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { describeStates, runUntilSettled } from '../settle.js';
import { readTasks, sleep } from '../waitFor.js';
import { readStageRuns, timedStages } from '../timedStage.js';

export const scenario: ChaosScenario = {
  name: 'random kill',
  fault: 'kill -9 the daemon at a random moment while tasks with 50–500 ms stages flow, then restart it (200 times; quick: 5)',
  target: 'tasks lost 0, duplicate completions 0, re-executions reported',
  async run({ quick, workDir, log }) {
    const kills = quick ? 5 : 200;
    const ws = new Workspace(workDir);
    ws.writeConfig({
      approvals: { plan: 'auto', implementation: 'auto' },
      concurrency: 4,
      stages: timedStages(ws, { RANDOM_SLEEP_MS: '50-500' }),
    });
    const failures: string[] = [];
    const submitted: number[] = [];
    let requests = 0;
    const submit = async () => {
      const r = await cliAsync(ws, ['submit', `random kill task ${++requests}`, '--json']);
      if (r.code !== 0) failures.push(`cairn submit exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
      else submitted.push(JSON.parse(r.stdout).id);
    };
    await Promise.all([submit(), submit(), submit()]);

    let killedBeforeReady = 0;
    for (let k = 1; k <= kills; k++) {
      const daemon = ws.startDaemon();
      const started = Date.now();
      // A submit races the daemon's life; it writes the database itself, so a kill cannot lose it.
      const submitting = submit();
      // One kill in five lands during start-up (opening the store, resuming); the rest while stages run.
      const isDuringStartup = Math.random() < 0.2;
      if (isDuringStartup) await sleep(Math.random() * 300);
      else {
        await daemon.waitForLog(/cairn daemon started/, 30_000);
        await sleep(Math.random() * (quick ? 600 : 1000));
      }
      const lifeMs = Date.now() - started;
      if (!daemon.lines.some((l) => /cairn daemon started/.test(String(l.msg)))) killedBeforeReady++;
      const exit = await daemon.kill('SIGKILL');
      await submitting;
      if (exit.signal !== 'SIGKILL') failures.push(`kill ${k}: the daemon had already exited (${exit.code}) before the kill: ${daemon.stderr.trim()}`);
      if (k % 20 === 0 || quick) log(`kill ${k}/${kills} after ${lifeMs} ms: ${describeStates(readTasks(ws.dbFile))}`);
    }

    const settleStarted = Date.now();
    const tasks = await runUntilSettled(ws, quick ? 30_000 : 300_000);
    log(`settled in ${Date.now() - settleStarted} ms`);
    const byId = new Map(tasks.map((t) => [t.id, t]));
    const lost = submitted.filter((id) => byId.get(id)?.state !== 'completed');
    for (const id of lost) failures.push(`task ${id} was submitted but ended ${byId.get(id)?.state ?? 'missing'}`);
    const report = checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger'));
    failures.push(...report.violations);
    const duplicates = report.violations.filter((v) => /completions recorded/.test(v)).length;
    const { overlaps } = readStageRuns(ws);
    failures.push(...overlaps);
    log(`${submitted.length} tasks, ${report.executions} stage executions, ${report.completions} completions; ${killedBeforeReady} kill(s) before the daemon was ready`);
    return {
      iterations: kills,
      figure: `lost ${lost.length}, duplicates ${duplicates}, re-executions ${report.reExecutions} (of ${report.executions}), twice at once ${overlaps.length}`,
      held: failures.length === 0,
      failures,
    };
  },
};
