/**
 * Task text is data: shell syntax, option-like words, newlines, unicode and a 1 MB request go through
 * every way a request enters (CLI argv, after `--`, an inbox file, the heartbeat's cycle command) and
 * through every stage's stdin, and nothing happens but storing and handing it on byte for byte.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Workspace } from '../../helpers/cairnProcess.js';
import { checkInvariants } from '../invariants.js';
import type { ChaosScenario } from '../scenario.js';
import { readTasks, waitAllTerminal, waitFor } from '../waitFor.js';

/** Every file named `pwned` under `dir`. */
function findPwned(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.name.startsWith('pwned')) found.push(p);
    if (e.isDirectory()) found.push(...findPwned(p));
  }
  return found;
}

function hostileRequests(canaryDir: string): string[] {
  const pwned = path.join(canaryDir, 'pwned');
  return [
    '$(touch pwned)',
    `$(touch ${pwned})`,
    '`touch pwned`',
    '`id`',
    '--help',
    '-rf',
    `; rm -rf ${canaryDir}`,
    `x && rm -rf ${canaryDir} || touch ${pwned}`,
    `first line\nsecond line; touch pwned\n$(touch ${pwned}-newline)`,
    `"quotes' and \\ backslashes \\" ${'${IFS}'}touch${'${IFS}'}pwned`,
    'ünïcödé ✓ 日本語 🪨🪨 \u202Eright-to-left\u202C zero\u200Bwidth',
    `%s%n%x {{constructor}} __proto__ ../../../etc/passwd | tee ${pwned}`,
  ];
}

export const scenario: ChaosScenario = {
  name: 'hostile task text',
  fault: 'requests with $(…), `…`, --help, ; rm -rf, -rf, newlines, unicode, 1 MB, via argv, inbox and cycle command',
  target: 'no side effects; show --json returns each request byte for byte',
  async run({ quick, workDir, log }) {
    const ws = new Workspace(workDir);
    const canaryDir = mkdtempSync(path.join(os.tmpdir(), 'cairn-canary-'));
    writeFileSync(path.join(canaryDir, 'keep'), 'this file must survive\n');
    const failures: string[] = [];
    const requests = hostileRequests(canaryDir);
    // MAX_ARG_STRLEN (128 KiB) bounds one argv word, so the argv path gets 100 kB; files and the cycle get 1 MB.
    const big = (n: number) => `${'$(touch pwned) ; rm -rf ~ '.repeat(Math.ceil(n / 25)).slice(0, n - 1)}!`;
    const argvRequests = [...requests, big(100_000)];
    const fileRequests = [...requests, big(quick ? 200_000 : 1_000_000)];

    // The cycle command prints every request as a JSON line, once.
    const cycleData = path.join(workDir, 'cycle-requests.json');
    writeFileSync(cycleData, JSON.stringify(fileRequests));
    const cycleScript = path.join(workDir, 'cycle.mjs');
    writeFileSync(
      cycleScript,
      `#!/usr/bin/env node\nimport { existsSync, readFileSync, renameSync } from 'node:fs';\n` +
        `const f = ${JSON.stringify(cycleData)};\nif (existsSync(f)) {\n  for (const request of JSON.parse(readFileSync(f, 'utf8'))) console.log(JSON.stringify({ request, tags: ['cycle'] }));\n  renameSync(f, f + '.done');\n}\n`,
    );
    chmodSync(cycleScript, 0o755);
    ws.writeConfig({
      approvals: { plan: 'auto', implementation: 'auto' },
      concurrency: 8,
      snapshots: { onStart: false },
      cycle: { run: [process.execPath, cycleScript] },
    });

    const expected: string[] = [];
    // Quick: the 100 kB request goes through the inbox and the cycle only.
    const viaArgv = quick ? argvRequests.filter((r) => r.length < 1000) : argvRequests;
    for (const request of viaArgv) {
      // An option-like request needs `--`, as for any CLI; everything else goes in as it is.
      const args = request.startsWith('-') ? ['submit', '--json', '--', request] : ['submit', request, '--json'];
      const r = ws.cli(args);
      if (r.code !== 0) failures.push(`submit ${JSON.stringify(request.slice(0, 40))} exited ${r.code}: ${r.stderr.slice(0, 300)}`);
      else expected.push(request);
    }
    // Without `--`, an option-like request is refused as a usage error, never run as an option.
    const bare = ws.cli(['submit', '-rf']);
    if (bare.code !== 2) failures.push(`\`cairn submit -rf\` exited ${bare.code}, want 2 (usage): ${bare.stderr.slice(0, 200)}`);

    const inbox = path.join(ws.dataDir, 'inbox');
    mkdirSync(inbox, { recursive: true });
    writeFileSync(path.join(inbox, 'hostile.json.part'), JSON.stringify(fileRequests.map((request) => ({ request, tags: ['inbox'] }))));
    // Renamed into place, as a careful writer does: the inbox never sees it half written.
    renameSync(path.join(inbox, 'hostile.json.part'), path.join(inbox, 'hostile.json'));
    expected.push(...fileRequests, ...fileRequests);

    const daemon = ws.startDaemon();
    let tasks;
    try {
      await daemon.waitForLog(/cairn daemon started/);
      await waitFor('the cycle command and the inbox to submit their tasks', 30_000, () => (readTasks(ws.dbFile).length >= expected.length ? true : undefined), 200);
      tasks = await waitAllTerminal(ws.dbFile, quick ? 60_000 : 300_000, expected.length);
    } finally {
      await daemon.kill('SIGTERM');
    }
    log(`${tasks.length} tasks from ${viaArgv.length} argv submits, 1 inbox file and 1 cycle run`);

    // Byte for byte: every expected request exactly once per path, as `show --json` and the stage's stdin see it.
    const remaining = [...expected];
    let stageInputsChecked = 0;
    for (const t of tasks) {
      const i = remaining.indexOf(t.request);
      if (i < 0) failures.push(`task ${t.id} holds a request nobody submitted: ${JSON.stringify(t.request.slice(0, 80))}`);
      else remaining.splice(i, 1);
      if (t.state !== 'completed') failures.push(`task ${t.id} ended ${t.state}, want completed`);
    }
    for (const r of remaining) failures.push(`request ${JSON.stringify(r.slice(0, 80))} (${r.length} chars) never became a task`);
    const showChecks = quick ? tasks.filter((t) => t.request.length > 1000 || t.request.includes('\n') || t.request.startsWith('-')) : tasks;
    for (const t of showChecks) {
      const shown = ws.show(t.id);
      if (shown.request !== t.request) failures.push(`show --json of task ${t.id} changed its request (${shown.request.length} vs ${t.request.length} chars)`);
    }
    for (const t of tasks) {
      for (const stage of ['plan', 'implement', 'review', 'verify']) {
        const input = ws.stageInput(t.id, stage, 1);
        stageInputsChecked++;
        if (input.request !== t.request) failures.push(`task ${t.id} ${stage} read a different request on stdin`);
      }
    }

    const sideEffects = [...findPwned(workDir), ...findPwned(canaryDir), ...findPwned(process.cwd())];
    if (!existsSync(path.join(canaryDir, 'keep'))) sideEffects.push(`${canaryDir}/keep was deleted`);
    for (const s of sideEffects) failures.push(`side effect: ${s}`);
    rmSync(canaryDir, { recursive: true, force: true });

    const inv = checkInvariants(ws.dbFile, path.join(ws.recordDir, 'ledger'));
    failures.push(...inv.violations);
    return {
      iterations: tasks.length,
      figure: `side effects ${sideEffects.length}; ${tasks.length} tasks, ${showChecks.length} shown and ${stageInputsChecked} stage inputs byte-identical, ${failures.length - sideEffects.length - inv.violations.length} mismatches; re-executions ${inv.reExecutions}`,
      held: failures.length === 0,
      failures,
    };
  },
};
