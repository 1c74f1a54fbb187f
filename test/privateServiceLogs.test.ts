/**
 * What `cairn start` tightens besides pm2's log files (test/pm2.test.ts covers those under a real
 * pm2): only regular files and the logs directory itself. A task's log directory below it stays a
 * usable 0700 directory, and something pm2 was pointed at that is not a file (/dev/null is the
 * documented way to drop a log; a fifo stands in for it here) keeps its mode.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tightenDataDirLogs, tightenProcessManagerLogs } from '../src/daemon/privateServiceLogs.js';
import { tempDir } from './helpers/tmp.js';

const mode = (file: string) => statSync(file).mode & 0o777;

describe('making service logs private', () => {
  it('chmods the files pm2 names to 0600 and leaves what is not a regular file alone', () => {
    const dir = tempDir();
    const out = path.join(dir, 'cairn-out.log');
    const fifo = path.join(dir, 'err.fifo');
    writeFileSync(out, 'a line\n', { mode: 0o644 });
    chmodSync(out, 0o644);
    execFileSync('mkfifo', ['-m', '0644', fifo]);
    const missing = path.join(dir, 'not-yet.log');
    expect(tightenProcessManagerLogs({ pm_out_log_path: out, pm_err_log_path: fifo, pm_log_path: missing })).toEqual([]);
    expect([mode(out), mode(fifo)]).toEqual([0o600, 0o644]);
  });

  it("chmods the data directory's logs to 0700 and the files in it to 0600, not the task log directories", () => {
    const dataDir = tempDir();
    const logs = path.join(dataDir, 'logs');
    mkdirSync(path.join(logs, '7'), { recursive: true });
    chmodSync(logs, 0o755);
    chmodSync(path.join(logs, '7'), 0o700);
    writeFileSync(path.join(logs, 'daemon.out.log'), '', { mode: 0o644 });
    chmodSync(path.join(logs, 'daemon.out.log'), 0o644);
    expect(tightenDataDirLogs(dataDir)).toEqual([]);
    expect([mode(logs), mode(path.join(logs, 'daemon.out.log')), mode(path.join(logs, '7'))]).toEqual([0o700, 0o600, 0o700]);
    expect(tightenDataDirLogs(path.join(dataDir, 'absent'))).toEqual([]);
  });
});
