/**
 * A stage wrapper for the chaos scenarios that run stages under faults: it records when each stage
 * run starts and ends, and notices, at the moment a run starts, whether an earlier run of the same
 * task and stage is still alive (a stage running twice at once). It then runs the fixture stage
 * script (so the ledger is written as usual), optionally with a random sleep.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { STAGE_SCRIPT, type Workspace } from '../helpers/cairnProcess.js';

// A process is the earlier run only if it is not a zombie (its daemon may be frozen and unable to
// reap it) and its environment still carries that run's id (a pid can be reused).
const WRAPPER = `#!/usr/bin/env bash
set -u
runs="$STAGE_RECORD_DIR/runs"
now() { date +%s%3N; }
if [[ -f "$runs" ]]; then
  while read -r kind run task stage pid at; do
    [[ "$kind" == start && "$task" == "$CAIRN_TASK_ID" && "$stage" == "$CAIRN_STAGE" && "$run" != "$CAIRN_RUN_ID" ]] || continue
    grep -q "^end $run " "$runs" && continue
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || continue
    [[ -z "$state" || "$state" == Z ]] && continue
    tr '\\0' '\\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "CAIRN_RUN_ID=$run" || continue
    echo "overlap $CAIRN_RUN_ID $CAIRN_TASK_ID $CAIRN_STAGE $run $(now)" >> "$runs"
  done < "$runs"
fi
echo "start $CAIRN_RUN_ID $CAIRN_TASK_ID $CAIRN_STAGE $$ $(now)" >> "$runs"
if [[ -n "\${RANDOM_SLEEP_MS:-}" ]]; then
  lo=\${RANDOM_SLEEP_MS%-*}; hi=\${RANDOM_SLEEP_MS#*-}
  ms=$(( lo + RANDOM % (hi - lo + 1) ))
  export STAGE_SLEEP=$(printf '%d.%03d' $(( ms / 1000 )) $(( ms % 1000 )))
fi
"$FIXTURE_STAGE"
code=$?
echo "end $CAIRN_RUN_ID $CAIRN_TASK_ID $CAIRN_STAGE $$ $(now)" >> "$runs"
exit $code
`;

type StageName = 'plan' | 'implement' | 'review' | 'verify';

/**
 * Writes the wrapper into the workspace and returns the `stages` config that runs it for all four
 * stages, with `env` for every stage and `perStage` on top. RANDOM_SLEEP_MS="50-500" makes each run
 * sleep a random time in that range.
 */
export function timedStages(ws: Workspace, env: Record<string, string> = {}, perStage: Partial<Record<StageName, Record<string, string>>> = {}) {
  const wrapper = path.join(ws.dir, 'timed-stage.sh');
  writeFileSync(wrapper, WRAPPER);
  chmodSync(wrapper, 0o755);
  const stage = (name: StageName) => ({
    run: [wrapper],
    env: { STAGE_RECORD_DIR: ws.recordDir, FIXTURE_STAGE: STAGE_SCRIPT, ...env, ...perStage[name] },
  });
  return { plan: stage('plan'), implement: stage('implement'), review: stage('review'), verify: stage('verify') };
}

export interface StageRunTimes {
  starts: number;
  ends: number;
  /** Runs that started while an earlier run of the same task and stage was alive, named. */
  overlaps: string[];
}

/** Reads what the wrappers recorded in the workspace. */
export function readStageRuns(ws: Workspace): StageRunTimes {
  const file = path.join(ws.recordDir, 'runs');
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  const overlaps = lines
    .filter((l) => l.startsWith('overlap '))
    .map((l) => {
      const [, run, task, stage, earlier] = l.split(' ');
      return `task ${task} ${stage}: run ${run} started while run ${earlier} was still running`;
    });
  return { starts: lines.filter((l) => l.startsWith('start ')).length, ends: lines.filter((l) => l.startsWith('end ')).length, overlaps };
}
