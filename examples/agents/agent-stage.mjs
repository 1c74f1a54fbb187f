#!/usr/bin/env node
// A cairn stage that runs a coding-agent CLI. Usage, as a stage's "run" array in cairn.config.json:
//
//   ["./agent-stage.mjs", "--result-field", "result", "--", "claude", "-p", "--output-format", "stream-json", "--verbose"]
//
// Everything after `--` is the agent's argv, started as it is (never through a shell). The wrapper
// reads the stage input cairn gives on stdin, writes a prompt for the stage from it, and hands the
// prompt to the agent on stdin; or, where an argument is `{prompt_file}`, in a private file whose path
// replaces it. Task text is never put into an argument, so it cannot become a flag or a shell word.
//
// The agent's stdout is its progress: it is copied to this program's stdout, which cairn writes to the
// stage log (and which keeps the stage's idleTimeout from firing while the agent works). Its result is:
//   - with `{result_file}` among its arguments: what it wrote to that file (e.g. codex's `-o {result_file}`);
//   - with `--result-field NAME`: the string field NAME of the last stdout line that is a JSON object
//     holding it (claude's stream-json ends with {"type":"result","result":"…"});
//   - otherwise all of its stdout.
// The wrapper writes the result to the file $CAIRN_OUTPUT names, so cairn records it and not the noise.
// For the review stage it first finds the verdict in the agent's prose, the last JSON object with
// "verdict" "approve" or "request_changes" (fenced in ``` or not), and writes just that.
//
// The agent's exit code is this program's; killed by a signal, it exits 128 + the signal's number.
// cairn stops a stage by signalling its whole process group, which the agent is part of.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** How much of the agent's stdout is kept in memory to find its result in (its last part). */
const KEEP_STDOUT_BYTES = 8 * 1024 * 1024;
const VERDICTS = ['approve', 'request_changes'];

function usage(message) {
  process.stderr.write(`agent-stage: ${message}\nusage: agent-stage.mjs [--result-field NAME] -- AGENT [ARG…]  (AGENT's args may hold {prompt_file} and {result_file})\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const options = { resultField: null };
  let i = 0;
  for (; i < argv.length && argv[i] !== '--'; i++) {
    if (argv[i] === '--result-field' && argv[i + 1]) options.resultField = argv[++i];
    else usage(`unknown option ${argv[i]}`);
  }
  const agent = argv.slice(i + 1);
  if (agent.length === 0) usage('name the agent program after `--`');
  return { ...options, agent };
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

const section = (title, body) => (body ? `\n## ${title}\n\n${typeof body === 'string' ? body : JSON.stringify(body, null, 2)}\n` : '');

/** The prompt for this stage, from the stage input cairn gave. */
function buildPrompt(input) {
  const feedback = input.feedback.map((f) => `- ${f.source} (${f.stage}): ${f.text}`).join('\n');
  const repeat =
    input.attempt > 1
      ? `\nThis is attempt ${input.attempt} of this stage (run ${input.run_id}). An earlier attempt may have been interrupted ` +
        'and left partial work in the working directory: look at what is there and carry on from it rather than starting over.\n'
      : '';
  const intro = {
    plan: 'You are the planning stage of a task. Write a plan for the request below: the steps, the files to change, the risks. Do not change any files.',
    implement: 'You are the implementation stage of a task. Carry out the request below, following the plan. When you are done, reply with a short summary of what you changed.',
    review:
      'You are the review stage of a task. Review the changes made for the request below (look at the working directory, e.g. `git diff`). Do not change any files. ' +
      'End your reply with one JSON object: {"verdict":"approve","comments":"…"} if the work is done and right, or {"verdict":"request_changes","comments":"what to change"}.',
    verify: 'You are the verification stage of a task. Check that the work meets the request below and say what you checked.',
  }[input.stage];
  return (
    `${intro}\n${repeat}` +
    section('Request', input.request) +
    section('Plan', input.outputs.plan) +
    section('Implementation', input.stage === 'plan' ? null : input.outputs.implementation) +
    section('Feedback to address', feedback)
  );
}

/** The last JSON object in `text` whose verdict is one cairn takes, as {verdict, comments}; else null. */
function findVerdict(text) {
  const tail = text.length > 65536 ? text.slice(-65536) : text;
  let found = null;
  for (let start = tail.indexOf('{'); start >= 0; start = tail.indexOf('{', start + 1)) {
    const end = matchingBrace(tail, start);
    if (end < 0) continue;
    try {
      const value = JSON.parse(tail.slice(start, end + 1));
      if (value && VERDICTS.includes(value.verdict)) found = { verdict: value.verdict, comments: typeof value.comments === 'string' ? value.comments : JSON.stringify(value.comments ?? '') };
    } catch {
      // not JSON: prose with braces in it
    }
  }
  return found;
}

/** The index of the brace closing the one at `start`, skipping strings; -1 when it is not closed. */
function matchingBrace(text, start) {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}

function fieldOfLastLine(stdout, field) {
  const lines = stdout.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim();
    if (!line.startsWith('{')) continue;
    try {
      const value = JSON.parse(line);
      if (value && typeof value[field] === 'string') return value[field];
    } catch {
      // a progress line that is not JSON
    }
  }
  return null;
}

const { resultField, agent } = parseArgs(process.argv.slice(2));
const input = JSON.parse(await readStdin());
const prompt = buildPrompt(input);
const privateDir = mkdtempSync(path.join(os.tmpdir(), 'cairn-agent-')); // 0700
const cleanUp = () => rmSync(privateDir, { recursive: true, force: true });
// cairn stops a stage (timeout, cancel, shutdown) with SIGTERM to the group: the agent gets it too.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    cleanUp();
    process.exit(128 + os.constants.signals[signal]);
  });
}
const promptFile = path.join(privateDir, 'prompt.md');
const resultFile = path.join(privateDir, 'result.txt');
const usesPromptFile = agent.includes('{prompt_file}');
if (usesPromptFile) writeFileSync(promptFile, prompt, { mode: 0o600 });
const argv = agent.map((a) => (a === '{prompt_file}' ? promptFile : a === '{result_file}' ? resultFile : a));
// Run by hand (no CAIRN_OUTPUT), the progress goes to stderr and the result to stdout.
const progress = process.env.CAIRN_OUTPUT ? process.stdout : process.stderr;

const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'], shell: false });
let kept = [];
let keptBytes = 0;
child.stdout.on('data', (chunk) => {
  progress.write(chunk);
  kept.push(chunk);
  keptBytes += chunk.length;
  while (keptBytes > KEEP_STDOUT_BYTES && kept.length > 1) keptBytes -= kept.shift().length;
});
child.stdin.on('error', () => {}); // EPIPE: an agent reading its prompt from a file closes stdin
child.stdin.end(usesPromptFile ? '' : prompt);

const exit = await new Promise((resolve) => {
  child.on('error', (e) => resolve({ error: e }));
  child.on('close', (code, signal) => resolve({ code, signal }));
});
if (exit.error) {
  cleanUp();
  process.stderr.write(`agent-stage: cannot start ${argv[0]}: ${exit.error.message}\n`);
  process.exit(127);
}

const stdout = Buffer.concat(kept).toString('utf8');
let result;
if (agent.includes('{result_file}')) {
  try {
    result = readFileSync(resultFile, 'utf8');
  } catch {
    result = null;
  }
} else if (resultField) {
  result = fieldOfLastLine(stdout, resultField);
} else {
  result = stdout;
}
cleanUp();

if (exit.code !== 0) {
  process.stderr.write(`agent-stage: ${argv[0]} ${exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`}\n`);
}
if (result === null && exit.code === 0) {
  process.stderr.write(
    `agent-stage: ${argv[0]} gave no result (${agent.includes('{result_file}') ? 'it wrote nothing to {result_file}' : `no stdout line was a JSON object with a string "${resultField}"`})\n`,
  );
  process.exit(1);
}
let output = result ?? '';
if (input.stage === 'review') {
  const verdict = findVerdict(output);
  // No verdict: the reply goes on as it is, and cairn fails the review showing what the agent said.
  if (verdict) output = JSON.stringify(verdict);
  else process.stderr.write('agent-stage: the review has no {"verdict": …} object; cairn will fail it\n');
}
if (process.env.CAIRN_OUTPUT) writeFileSync(process.env.CAIRN_OUTPUT, output, { mode: 0o600 });
else process.stdout.write(`${output}\n`);
process.exitCode = exit.code ?? 128 + (os.constants.signals[exit.signal] ?? 0);
