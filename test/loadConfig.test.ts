/** Where the config comes from and how env and flags override it (DESIGN §6: flags > env > file > defaults). */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inboxDir } from '../src/inbox/inboxService.js';
import { loadConfig } from '../src/loadConfig.js';
import { tempDir } from './helpers/tmp.js';

describe('loadConfig', () => {
  it('a database URL from --database or CAIRN_DATABASE_URL keeps the schema the config file names', async () => {
    const cwd = tempDir();
    writeFileSync(path.join(cwd, 'cairn.config.json'), JSON.stringify({ store: { kind: 'postgres', url: 'postgres://a@h1/db', schema: 'team_a' } }));
    const env = { HOME: cwd, XDG_CACHE_HOME: path.join(cwd, 'cache') };

    const fromFile = await loadConfig({ cwd, env });
    expect(fromFile.store).toMatchObject({ kind: 'postgres', url: 'postgres://a@h1/db', schema: 'team_a' });
    const fromEnv = await loadConfig({ cwd, env: { ...env, CAIRN_DATABASE_URL: 'postgres://b@h2/db' } });
    expect(fromEnv.store).toMatchObject({ kind: 'postgres', url: 'postgres://b@h2/db', schema: 'team_a' });
    const fromFlag = await loadConfig({ cwd, env, overrides: { databaseUrl: 'postgres://c@h3/db' } });
    expect(fromFlag.store).toMatchObject({ kind: 'postgres', url: 'postgres://c@h3/db', schema: 'team_a' });
  });

  it('a database URL over a SQLite config switches the store to PostgreSQL', async () => {
    const cwd = tempDir();
    writeFileSync(path.join(cwd, 'cairn.config.json'), JSON.stringify({ store: { kind: 'sqlite' } }));
    const config = await loadConfig({ cwd, env: { HOME: cwd }, overrides: { databaseUrl: 'postgres://c@h3/db' } });
    expect(config.store).toMatchObject({ kind: 'postgres', url: 'postgres://c@h3/db' });
  });

  it('inbox.dir and dataDir from a config file are beside the file, wherever the daemon is started', async () => {
    const project = tempDir();
    const elsewhere = tempDir();
    const file = path.join(project, 'cairn.config.json');
    const env = { HOME: elsewhere, XDG_CACHE_HOME: path.join(elsewhere, 'cache') };
    writeFileSync(file, JSON.stringify({ inbox: { dir: 'drop' } }));
    const config = await loadConfig({ cwd: elsewhere, env, file });
    expect(inboxDir(config)).toBe(path.join(project, 'drop'));
    writeFileSync(file, JSON.stringify({ dataDir: 'data' }));
    expect(inboxDir(await loadConfig({ cwd: elsewhere, env, file }))).toBe(path.join(project, 'data', 'inbox'));
  });
});
