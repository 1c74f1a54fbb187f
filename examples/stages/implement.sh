#!/usr/bin/env bash
# Example implement stage: writes a result file for the task under $CAIRN_DATA_DIR/workspace/
# and prints what it wrote. Review comments and failed verifications arrive as `feedback`.
set -euo pipefail
exec node --input-type=module -e '
  import { mkdirSync, writeFileSync } from "node:fs";
  import path from "node:path";
  const input = JSON.parse(await new Promise((ok) => { let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => ok(s)); }));
  const dir = path.join(process.env.CAIRN_DATA_DIR, "workspace", String(input.task_id));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, "RESULT.md");
  const notes = input.feedback.map((f) => `- ${f.source}: ${f.text}`).join("\n");
  writeFileSync(file, `# ${input.request}\n\n${input.outputs.plan?.summary ?? ""}\n\nImplemented on attempt ${input.attempt}.\n${notes ? `\nFeedback addressed:\n${notes}\n` : ""}`, { mode: 0o600 });
  console.error(`wrote ${file}`);
  process.stdout.write(JSON.stringify({ files: [file], attempt: input.attempt }) + "\n");
'
