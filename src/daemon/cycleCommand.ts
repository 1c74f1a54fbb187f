/**
 * The autonomous cycle (DESIGN §5, `cycle` in config): a command the heartbeat runs every cycle or
 * every `cycle.every` cycles. Each JSON line it prints is a new task with the fields of `submit`
 * (`request`, and optionally `priority`, `tags`, `depends_on`); a line that is not one is logged and
 * skipped, and never stops the others. It runs like a stage: argv without a shell, its own process
 * group (a timeout reaches its children), its output appended to `state/logs/cycle.log`.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Engine } from '../engine/engine.js';
import { toError } from '../errors.js';
import { runCommandStage } from '../executors/commandStage.js';
import type { StageInput } from '../executors/types.js';

/** A cycle with no `timeout` of its own is stopped after this: it must not hold the heartbeat's upkeep for ever. */
const DEFAULT_CYCLE_TIMEOUT_MS = 600_000;

const CycleTask = z.strictObject({
  request: z.string().trim().min(1),
  priority: z.enum(['high', 'medium', 'low']).optional(),
  tags: z.array(z.string().min(1)).optional(),
  depends_on: z.array(z.number().int().positive()).optional(),
});

export interface CycleOutcome {
  submitted: number[];
  skipped: { line: number; reason: string }[];
  /** Set when the command itself failed (exit code, signal, timeout, not found); its valid lines still count. */
  failure: string | null;
}

/** Lines of what the command printed. The executor keeps a lone JSON line as parsed JSON: undo that. */
function outputLines(output: unknown): string[] {
  if (output === null || output === undefined) return [];
  const text = typeof output === 'string' ? output : JSON.stringify(output);
  return text.split('\n');
}

/** Turns one printed line into a submit request, or says why it is not one. Pure. */
export function parseCycleLine(line: string): { task: z.infer<typeof CycleTask> } | { reason: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { reason: `not JSON: ${line.slice(0, 120)}` };
  }
  const parsed = CycleTask.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length ? issue.path.join('.') : issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : 'line';
    return { reason: `${where}: ${issue.message} (a task line is {"request": "…", "priority"?, "tags"?, "depends_on"?})` };
  }
  return { task: parsed.data };
}

/** Runs the configured cycle command and submits the tasks it prints. Spawns a process; writes tasks. */
export async function runCycleCommand(options: {
  config: Config;
  engine: Engine;
  logger: Logger;
  now: number;
  signal: AbortSignal;
}): Promise<CycleOutcome> {
  const { config, engine, logger } = options;
  const cycle = config.cycle!;
  const argv0 = cycle.run[0].includes('/') ? path.resolve(config.baseDir, cycle.run[0]) : cycle.run[0];
  const counts = await engine.store.countByStatus();
  const result = await runCommandStage({
    // The stage executor writes its input to stdin as JSON; a cycle's input is a summary of the queue.
    input: { at: new Date(options.now).toISOString(), counts } as unknown as StageInput,
    stage: {
      kind: 'command',
      argv: [argv0, ...cycle.run.slice(1)],
      cwd: cycle.cwd ? path.resolve(config.baseDir, cycle.cwd) : config.baseDir,
      env: { ...(process.env as Record<string, string>), ...cycle.env, CAIRN_DATA_DIR: config.dataDir, CAIRN_CYCLE_AT: String(options.now) },
      timeoutMs: cycle.timeout ?? DEFAULT_CYCLE_TIMEOUT_MS,
      idleTimeoutMs: null,
    },
    dataDir: config.dataDir,
    logFile: path.join(config.dataDir, 'logs', 'cycle.log'),
    outputBytes: config.limits.outputBytes,
    signal: options.signal,
    logger,
  });
  const outcome: CycleOutcome = { submitted: [], skipped: [], failure: result.ok ? null : result.message };
  const lines = outputLines(result.ok ? result.output : result.output);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const parsed = parseCycleLine(line);
    if ('reason' in parsed) {
      outcome.skipped.push({ line: i + 1, reason: parsed.reason });
      logger.warn({ line: i + 1 }, `cycle: line ${i + 1} skipped: ${parsed.reason}`);
      continue;
    }
    try {
      const task = await engine.submit(
        { request: parsed.task.request, priority: parsed.task.priority, tags: parsed.task.tags, dependsOn: parsed.task.depends_on },
        'cycle',
      );
      outcome.submitted.push(task.id);
      logger.info({ task: task.id, line: i + 1 }, `cycle: submitted task ${task.id}: ${task.request.slice(0, 80)}`);
    } catch (e) {
      const reason = toError(e).message;
      outcome.skipped.push({ line: i + 1, reason });
      logger.warn({ line: i + 1 }, `cycle: line ${i + 1} skipped: ${reason}`);
    }
  }
  return outcome;
}
