/**
 * Where a stage run's log lives: `<dataDir>/logs/<task>/<stage>-<attempt>.log` (DESIGN §4). The daemon
 * writes there and `cairn logs`/`cairn show` read there, so the name is made in this one place. Pure.
 */
import path from 'node:path';

/** `<dataDir>/logs`, absolute. */
export function stageLogsDir(dataDir: string): string {
  return path.resolve(dataDir, 'logs');
}

/**
 * The log file of one run under `logsDir` (absolute and normalised, as stageLogsDir gives it). Joined
 * by hand: every part is already normal (a number, a stage name), and path.join's normalising is a
 * measurable share of a no-op stage's cost.
 */
export function stageLogPath(logsDir: string, taskId: number, stage: string, attempt: number): string {
  return `${logsDir}${path.sep}${taskId}${path.sep}${stage}-${attempt}.log`;
}
