/**
 * What `cairn init` writes: a config with every key at its default (README's "Starter config" explains
 * each, since JSON has no comments) and four small stage programs it points at. The programs are real:
 * a daemon started on the config runs a task through every stage with them, and each says where a real
 * planner, agent or test command goes. The task text reaches them as JSON on stdin, parsed by node:
 * it is never pasted into a shell command.
 */
import type { ConfigFile } from '../config.js';

/**
 * The starter config. Typed against the schema's input, so a key the schema does not have fails to
 * compile; test/initService.test.ts checks that it loads to exactly the schema's defaults (stages aside).
 * The optional keys with no default (store.path, inbox.dir, state.backend, …) appear as the empty
 * objects the schema's defaults are; README names what each may hold.
 */
export const STARTER_CONFIG = {
  dataDir: 'state',
  concurrency: 4,
  durability: 'full',
  resumeOnStart: true,
  shutdownGraceMs: 10_000,
  views: true,
  store: { kind: 'sqlite' },
  approvals: { plan: 'manual', implementation: 'manual' },
  limits: { stageAttempts: 3, reviewCycles: 3, verifyCycles: 3, outputBytes: 1_048_576, retryBackoff: '1s', retryBackoffMax: '5m' },
  stages: {
    plan: { run: ['./stages/plan.sh'], timeout: '10m' },
    implement: { run: ['./stages/implement.sh'], timeout: '1h', idleTimeout: '10m' },
    review: { run: ['./stages/review.sh'], timeout: '10m' },
    verify: { run: ['./stages/verify.sh'], timeout: '10m' },
  },
  heartbeat: { cron: '* * * * *', staleAfter: '10m', approvalReminderAfter: '24h' },
  snapshots: { cron: '0 * * * *', keepHourly: 24, keepDaily: 30, archive: true, onStart: true, drillEvery: '24h' },
  history: { keepDays: null },
  cycle: null,
  inbox: {},
  state: {},
} satisfies ConfigFile;

// Reads the stage input (JSON on stdin) in node; shared by the scripts below.
const READ_INPUT = 'const input = JSON.parse(await new Promise((ok) => { let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => ok(s)); }));';

/** The stage programs, by file name under DIR/stages/. Each prints its output as JSON on stdout. */
export const STARTER_STAGES: Readonly<Record<string, string>> = {
  'plan.sh': `#!/usr/bin/env bash
# Plan stage (written by \`cairn init\`): reads the task as JSON on stdin and prints a plan as JSON.
# Replace the node program with your planner, e.g. a coding agent asked for a plan only.
# A plan rejected with \`cairn reject ID --reason …\` comes back with the reason in \`feedback\`.
set -euo pipefail
exec node --input-type=module -e '
  ${READ_INPUT}
  const plan = {
    summary: \`Plan for: \${input.request}\`,
    steps: ["write the change", "review it", "verify it"],
    addresses_feedback: input.feedback.filter((f) => f.source === "plan_rejected").map((f) => f.text),
    attempt: input.attempt,
  };
  process.stdout.write(JSON.stringify(plan) + "\\n");
'
`,
  'implement.sh': `#!/usr/bin/env bash
# Implement stage (written by \`cairn init\`): writes $CAIRN_DATA_DIR/workspace/<task>/RESULT.md and
# prints the files it wrote as JSON. Replace it with the program that does the work (see README,
# "Plugging in a real coding agent"). Review comments and failed verifications arrive in \`feedback\`.
set -euo pipefail
exec node --input-type=module -e '
  import { mkdirSync, writeFileSync } from "node:fs";
  import path from "node:path";
  ${READ_INPUT}
  const dir = path.join(process.env.CAIRN_DATA_DIR, "workspace", String(input.task_id));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, "RESULT.md");
  const notes = input.feedback.map((f) => \`- \${f.source}: \${f.text}\`).join("\\n");
  writeFileSync(file, \`# \${input.request}\\n\\n\${input.outputs.plan?.summary ?? ""}\\n\${notes ? \`\\nFeedback addressed:\\n\${notes}\\n\` : ""}\`, { mode: 0o600 });
  console.error(\`wrote \${file}\`);
  process.stdout.write(JSON.stringify({ files: [file], attempt: input.attempt }) + "\\n");
'
`,
  'review.sh': `#!/usr/bin/env bash
# Review stage (written by \`cairn init\`): prints a verdict as JSON, {"verdict": "approve" or
# "request_changes", "comments": "…"}. Changes requested send the task back to implement with the
# comments as feedback (at most limits.reviewCycles times). Replace it with your reviewer.
set -euo pipefail
exec node --input-type=module -e '
  ${READ_INPUT}
  const files = input.outputs.implementation?.files ?? [];
  const verdict = files.length > 0
    ? { verdict: "approve", comments: \`looked at \${files.length} file(s)\` }
    : { verdict: "request_changes", comments: "the implementation wrote no files" };
  process.stdout.write(JSON.stringify(verdict) + "\\n");
'
`,
  'verify.sh': `#!/usr/bin/env bash
# Verify stage (written by \`cairn init\`): exit 0 passes; any other exit sends the task back to
# implement with this output as feedback. Replace the check with your tests, e.g. \`exec npm test\`.
set -euo pipefail
file="$CAIRN_DATA_DIR/workspace/$CAIRN_TASK_ID/RESULT.md"
if [[ ! -s "$file" ]]; then
  echo "verification failed: $file is missing or empty"
  exit 1
fi
echo "verified: $file has $(wc -l < "$file") lines"
`,
};
