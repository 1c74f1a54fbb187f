/** What every executor receives and returns. Executors report outcomes; retry decisions belong to the machine. */
import type { Logger } from 'pino';
import type { Feedback, FailureReason, StageName } from '../../machines/task.machine.js';
import type { StateNamespace, TaskKeyValueState } from '../state/stateNamespace.js';

/** The JSON a stage program reads on stdin (and a module stage gets as its first argument). */
export interface StageInput {
  task_id: number;
  request: string;
  priority: string;
  tags: string[];
  depends_on: number[];
  stage: StageName;
  attempt: number;
  run_id: string;
  outputs: Record<string, unknown>;
  feedback: Feedback[];
}

export interface ModuleStageContext {
  signal: AbortSignal;
  logger: Logger;
  taskId: number;
  stage: StageName;
  attempt: number;
  runId: string;
  dataDir: string;
  /** The task's key-value state (namespace `task-<id>`, the one CAIRN_STATE_NS names for command stages). */
  state: StateNamespace;
}

export type ModuleStageFn = (input: StageInput, ctx: ModuleStageContext) => unknown | Promise<unknown>;

export interface ResolvedCommandStage {
  kind: 'command';
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number | null;
  idleTimeoutMs: number | null;
  /**
   * The file named by CAIRN_OUTPUT (already in `env`): when the program writes it, its content is the
   * output and stdout is only logged. Absent for commands that are not stage runs (the cycle command).
   */
  outputFile?: string;
}

export interface ResolvedModuleStage {
  kind: 'module';
  /** A file to import (its default export) or, through the library API, the function itself. */
  module: string | ModuleStageFn;
  timeoutMs: number | null;
}

export type ResolvedStage = ResolvedCommandStage | ResolvedModuleStage;

export interface StageRunRequest {
  input: StageInput;
  stage: ResolvedStage;
  dataDir: string;
  logFile: string;
  outputBytes: number;
  signal: AbortSignal;
  logger: Logger;
  /** Called once a command stage's process group exists, so it can be recorded for a successor to end. */
  onSpawn?: (pgid: number) => void;
  /** The task's key-value state, handed to module stages as `ctx.state` and closed when the stage ends. */
  state?: TaskKeyValueState;
}

export type StageResult =
  | {
      ok: true;
      output: unknown;
      truncated: boolean;
      /** Where a command stage's output came from: its stdout, or the file CAIRN_OUTPUT named. */
      outputSource?: 'stdout' | 'file';
    }
  | {
      ok: false;
      /** 'aborted': stopped on purpose (cancel, shutdown); the engine records nothing for it. */
      reason: FailureReason | 'aborted';
      message: string;
      exitCode: number | null;
      signal: string | null;
      output?: string;
    };
