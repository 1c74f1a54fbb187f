/**
 * `cairn <args>` as a child process without blocking the scenario, so several CLI processes (and the
 * scenario's own timers) run at once. Resolves with the exit code or signal and the output.
 */
import { spawn } from 'node:child_process';
import { CAIRN_BIN, type Workspace } from '../helpers/cairnProcess.js';

export interface AsyncCliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function cliAsync(ws: Workspace, args: string[], env: NodeJS.ProcessEnv = {}): Promise<AsyncCliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CAIRN_BIN, ...args], {
      cwd: ws.dir,
      env: { ...process.env, CAIRN_LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
