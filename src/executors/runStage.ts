/** Runs one stage attempt with the executor its config names. Never throws: every outcome is a StageResult. */
import { runCommandStage } from './commandStage.js';
import { runModuleStage } from './moduleStage.js';
import type { StageResult, StageRunRequest } from './types.js';

export function runStage(request: StageRunRequest): Promise<StageResult> {
  const { stage } = request;
  return stage.kind === 'command' ? runCommandStage({ ...request, stage }) : runModuleStage({ ...request, stage });
}
