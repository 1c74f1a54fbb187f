/**
 * The file a command stage may write its output to instead of stdout (`CAIRN_OUTPUT`). Coding-agent
 * CLIs print progress on stdout; a stage that wraps one writes its result here and stdout is only
 * logged. The path is `<dataDir>/runs/<task>/<stage>-<attempt>.out`: under the 0700 data directory
 * (private, on a disk cairn already writes, inside a systemd unit's ReadWritePaths), one per run.
 */
import { closeSync, mkdirSync, openSync, readSync, fstatSync, rmSync, rmdirSync } from 'node:fs';
import path from 'node:path';

/** Where the run's output file goes. Pure. */
export function outputFilePath(dataDir: string, taskId: number, stage: string, attempt: number): string {
  return path.join(dataDir, 'runs', String(taskId), `${stage}-${attempt}.out`);
}

/**
 * Makes the run's directory (0700) and removes a file left at the path: a snapshot restore can make
 * an attempt number run again, and its predecessor's file must not pass for this run's output.
 */
export function prepareOutputFile(file: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  rmSync(file, { force: true });
}

export type OutputFileRead =
  | { written: false }
  | { written: true; text: string; truncated: boolean; sizeBytes: number }
  | { written: true; error: string };

/** Reads at most `outputBytes` of the file, if the stage wrote it. Never throws. */
export function readOutputFile(file: string, outputBytes: number): OutputFileRead {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { written: false };
    return { written: true, error: `cannot read the stage's output file ${file} (CAIRN_OUTPUT): ${(e as Error).message}` };
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return { written: true, error: `the stage's output file ${file} (CAIRN_OUTPUT) is not a regular file; write the output into it as a file` };
    const wanted = Math.min(stat.size, outputBytes);
    const buffer = Buffer.alloc(wanted);
    let got = 0;
    while (got < wanted) {
      const n = readSync(fd, buffer, got, wanted - got, got);
      if (n === 0) break;
      got += n;
    }
    return { written: true, text: buffer.subarray(0, got).toString('utf8'), truncated: stat.size > outputBytes, sizeBytes: stat.size };
  } catch (e) {
    return { written: true, error: `cannot read the stage's output file ${file} (CAIRN_OUTPUT): ${(e as Error).message}` };
  } finally {
    closeSync(fd);
  }
}

/**
 * Removes the file once its content is in the result (the database keeps it), and the task's run
 * directory when that was the last file in it. A truncated output's file is kept: it has the rest.
 */
export function removeOutputFile(file: string): void {
  try {
    rmSync(file, { force: true });
    rmdirSync(path.dirname(file));
  } catch {
    // ENOTEMPTY: another run of the task keeps its file there; anything else leaves a file to tidy by hand.
  }
}
