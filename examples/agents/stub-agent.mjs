#!/usr/bin/env node
// A stand-in for a coding-agent CLI, for trying examples/agents/ and for cairn's tests. Like a real
// agent it reads its prompt on stdin (or from the file after --prompt-file), prints progress on stdout
// for a while, then its reply. With `--output-format stream-json` every line is a JSON event and the
// last is {"type":"result","result":"<reply>"}, as claude's is.
//
// Its reply depends on the stage (CAIRN_STAGE, which cairn sets and the wrapper passes on):
//   plan: numbered steps; implement: a summary; verify: what it checked;
//   review: prose, then a fenced JSON verdict: request_changes once when the request says
//   "needs changes" and no review feedback arrived yet, else approve; and no verdict at all when
//   the request says "no verdict".
// STUB_AGENT_STEP_MS (default 20) is the pause between progress lines; STUB_AGENT_RECORD_DIR, when
// set, receives prompt-<stage>-<attempt>.md with the prompt exactly as the agent got it.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const streamJson = args.includes('--output-format') && args[args.indexOf('--output-format') + 1] === 'stream-json';
const promptFile = args.includes('--prompt-file') ? args[args.indexOf('--prompt-file') + 1] : null;
const stepMs = Number(process.env.STUB_AGENT_STEP_MS ?? 20);
const stage = process.env.CAIRN_STAGE ?? 'implement';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

const prompt = promptFile ? readFileSync(promptFile, 'utf8') : await readStdin();
if (process.env.STUB_AGENT_RECORD_DIR) {
  writeFileSync(path.join(process.env.STUB_AGENT_RECORD_DIR, `prompt-${stage}-${process.env.CAIRN_ATTEMPT ?? 1}.md`), prompt);
}
const request = (prompt.split('## Request\n\n')[1] ?? '').split('\n## ')[0].trim();

const say = (text) => process.stdout.write(streamJson ? `${JSON.stringify({ type: 'assistant', message: { content: [{ type: 'text', text }] } })}\n` : `${text}\n`);
for (const step of ['● Reading the request', '● Looking at the working directory', '● Thinking']) {
  say(step);
  await new Promise((r) => setTimeout(r, stepMs));
}

function reviewReply() {
  const prose = 'I read the plan and the changes. The structure is sensible and nothing obvious is broken.';
  if (/no verdict/i.test(request)) return `${prose}\nI would rather not decide this one: the request is about documents I could not find anywhere in the working directory, so I cannot say whether they are tidy.`;
  const hadReview = /- review \(review\)/.test(prompt);
  const verdict =
    /needs changes/i.test(request) && !hadReview
      ? { verdict: 'request_changes', comments: 'add a test for the empty case' }
      : { verdict: 'approve', comments: 'looks good' };
  return `${prose}\n\n\`\`\`json\n${JSON.stringify(verdict)}\n\`\`\`\n`;
}

const reply = {
  plan: `1. Read the code the request touches.\n2. Make the change: ${request.slice(0, 80)}\n3. Add a test.`,
  implement: `Changed 2 files for: ${request.slice(0, 80)}`,
  review: reviewReply(),
  verify: 'Ran the checks: all passed.',
}[stage];
if (streamJson) process.stdout.write(`${JSON.stringify({ type: 'result', subtype: 'success', is_error: false, result: reply })}\n`);
else process.stdout.write(`${reply}\n`);
