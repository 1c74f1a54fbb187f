/**
 * Turns a stage's config into something runnable: paths resolved against the config file's directory,
 * durations in ms, and the CAIRN_* environment. Pure apart from reading process.env.
 */
import path from 'node:path';
import type { StageName } from '../../machines/task.machine.js';
import type { Config } from '../config.js';
import { ConfigError } from '../errors.js';
import type { ModuleStageFn, ResolvedStage } from './types.js';
import { taskNamespace } from '../state/stateNamespace.js';
import { outputFilePath } from './outputFile.js';

/** A relative program path ("./stages/plan.sh", "stages/plan.sh") is the config's; a bare name is looked up on PATH. */
function resolveProgram(argv0: string, baseDir: string): string {
  return argv0.includes('/') ? path.resolve(baseDir, argv0) : argv0;
}

export interface RunIdentity {
  taskId: number;
  stage: StageName;
  attempt: number;
  runId: string;
}

export function resolveStage(
  config: Config,
  stage: StageName,
  identity: RunIdentity,
  functions: Partial<Record<StageName, ModuleStageFn>> = {},
): ResolvedStage {
  const fn = functions[stage];
  if (fn) return { kind: 'module', module: fn, timeoutMs: null };
  const spec = config.stages[stage];
  if ('module' in spec) {
    return { kind: 'module', module: path.resolve(config.baseDir, spec.module), timeoutMs: spec.timeout ?? null };
  }
  if ('run' in spec) {
    const outputFile = outputFilePath(config.dataDir, identity.taskId, stage, identity.attempt);
    return {
      kind: 'command',
      argv: [resolveProgram(spec.run[0], config.baseDir), ...spec.run.slice(1)],
      cwd: spec.cwd ? path.resolve(config.baseDir, spec.cwd) : config.baseDir,
      env: {
        ...(process.env as Record<string, string>),
        ...spec.env,
        CAIRN_TASK_ID: String(identity.taskId),
        CAIRN_STAGE: stage,
        CAIRN_ATTEMPT: String(identity.attempt),
        CAIRN_RUN_ID: identity.runId,
        CAIRN_DATA_DIR: config.dataDir,
        // `cairn state …` in the stage finds its task's namespace and the daemon's state backend.
        CAIRN_STATE_NS: taskNamespace(identity.taskId),
        // A program whose stdout is noisy (a coding agent) writes its output here instead.
        CAIRN_OUTPUT: outputFile,
        ...(config.source ? { CAIRN_CONFIG: config.source } : {}),
      },
      timeoutMs: spec.timeout ?? null,
      idleTimeoutMs: spec.idleTimeout ?? null,
      outputFile,
    };
  }
  throw new ConfigError(
    `stages.${stage} has neither "run" nor "module" in ${config.source ?? 'the config'}; ` +
      `give it a program, e.g. "stages": {"${stage}": {"run": ["./stages/${stage}.sh"]}}`,
  );
}
