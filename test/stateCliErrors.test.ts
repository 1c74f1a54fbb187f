/**
 * `cairn state` errors through the real binary: each names what is wrong and what to do, with exit 2
 * for usage and 1 for operational errors (DESIGN §6); Redis being down is reported at once.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Workspace } from './helpers/cairnProcess.js';
import { tempDir } from './helpers/tmp.js';

describe('cairn state errors', () => {
  it('names what is wrong, with exit 2 for usage and 1 for operational errors', async () => {
    const ws = new Workspace(tempDir());
    ws.writeConfig();
    const noNs = ws.cli(['state', 'get', 'k'], { CAIRN_STATE_NS: '' });
    expect(noNs.code).toBe(2);
    expect(noNs.stderr).toMatch(/which namespace\? pass --ns NS, or set CAIRN_STATE_NS/);

    const badNs = ws.cli(['state', 'set', 'k', 'v', '--ns', '../etc']);
    expect(badNs.code).toBe(2);
    expect(badNs.stderr).toMatch(/"\.\.\/etc" is not a valid namespace name/);

    // A string value prints as it is (no quotes), for use in shell scripts.
    expect(ws.cli(['state', 'set', 'phase', 'building', '--ns', 'wf']).code).toBe(0);
    expect(ws.cli(['state', 'get', 'phase', '--ns', 'wf'])).toMatchObject({ code: 0, stdout: 'building\n' });

    const missing = ws.cli(['state', 'get', 'nope', '--ns', 'wf']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/key "nope" is not set in namespace wf; `cairn state list --ns wf`/);

    const noCheckpoint = ws.cli(['state', 'restore', 'never', '--ns', 'wf']);
    expect(noCheckpoint.code).toBe(1);
    expect(noCheckpoint.stderr).toMatch(/namespace wf has no checkpoint named never/);

    const noTo = ws.cli(['state', 'migrate', '--from', 'json:x']);
    expect(noTo.code).toBe(2);
    expect(noTo.stderr).toMatch(/needs both --from and --to/);

    const badSpec = ws.cli(['state', 'migrate', '--from', 'mongo://x', '--to', 'sqlite']);
    expect(badSpec.code).toBe(2);
    expect(badSpec.stderr).toMatch(/"mongo:\/\/x" is not a state backend; write sqlite, sqlite:PATH, postgres, postgres:\/\/HOST\/DB\[\?schema=S\], json, json:DIR, redis/);
  });

  it('with Redis down, exits 1 quickly and names the URL', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));

    const ws = new Workspace(tempDir());
    ws.writeConfig({ state: { backend: 'redis', url: `redis://127.0.0.1:${port}/0` } });
    const started = Date.now();
    const r = ws.cli(['state', 'set', 'k', 'v', '--ns', 'wf']);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach Redis at redis://127.0.0.1:${port}/0`);
  });
});
