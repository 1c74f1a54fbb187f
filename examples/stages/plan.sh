#!/usr/bin/env bash
# Example plan stage: reads the stage input (JSON on stdin) and prints a plan as JSON.
# The task text is data: it is parsed by node from stdin, never pasted into a shell command.
set -euo pipefail
exec node --input-type=module -e '
  const input = JSON.parse(await new Promise((ok) => { let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => ok(s)); }));
  const feedback = input.feedback.filter((f) => f.source === "plan_rejected").map((f) => f.text);
  const plan = {
    summary: `Plan for: ${input.request}`,
    steps: ["write the change into the workspace", "review it", "verify the result file"],
    addresses_feedback: feedback,
    attempt: input.attempt,
  };
  process.stdout.write(JSON.stringify(plan) + "\n");
'
