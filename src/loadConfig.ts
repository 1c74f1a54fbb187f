/**
 * Finds, merges and validates the config. Precedence: flags > CAIRN_* env > file > defaults.
 * Validation (zod, in config.ts) costs more to load than a read verb spends on everything else, so a
 * config validated once is remembered (configCache.ts) and the same input is not validated again.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from './config.js';
import { readCachedConfig, writeCachedConfig } from './configCache.js';
import { ConfigError } from './errors.js';

/** Overrides from flags; applied last. */
export interface ConfigOverrides {
  dataDir?: string;
  concurrency?: number;
  databaseUrl?: string;
  resumeOnStart?: boolean;
}

const DEFAULT_FILES = ['cairn.config.json', 'cairn.config.yaml', 'cairn.config.yml'];

async function readConfigFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (/\.ya?ml$/i.test(file)) {
    const { parse } = await import('yaml');
    try {
      return parse(text);
    } catch (e) {
      throw new ConfigError(`config file ${file} is not valid YAML: ${(e as Error).message}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

function envInt(name: string, env: NodeJS.ProcessEnv): number | undefined {
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value)) throw new ConfigError(`${name}=${value} is not a whole number`);
  return Number(value);
}

/**
 * Finds and validates the config: `file` if given (it must exist), else CAIRN_CONFIG, else
 * cairn.config.json/.yaml in `cwd`, else defaults. Reads files; writes only the validation cache.
 */
export async function loadConfig(
  options: { file?: string; cwd?: string; env?: NodeJS.ProcessEnv; overrides?: ConfigOverrides } = {},
): Promise<Config> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const explicit = options.file ?? env.CAIRN_CONFIG;
  let file: string | null = null;
  if (explicit) {
    file = path.resolve(cwd, explicit);
    if (!existsSync(file)) throw new ConfigError(`config file ${file} does not exist`);
  } else {
    file = DEFAULT_FILES.map((f) => path.join(cwd, f)).find((f) => existsSync(f)) ?? null;
  }
  const raw = file ? await readConfigFile(file) : {};
  if (raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ConfigError(`config file ${file} must hold an object of settings, not ${Array.isArray(raw) ? 'an array' : typeof raw}`);
  }
  const merged: Record<string, unknown> = { ...(raw as Record<string, unknown> | null) };

  // A database URL from env or a flag replaces the store, but keeps the schema the config file names.
  const fileSchema = (merged.store as { schema?: unknown } | undefined)?.schema;
  const postgresAt = (url: string) => ({ kind: 'postgres', url, ...(fileSchema !== undefined ? { schema: fileSchema } : {}) });

  // CAIRN_* environment, then flags. A data directory typed on the command line or set in the
  // environment is where the user is (cwd); one written in a config file, or the default `state`
  // under a config file, is beside that file, so every verb finds it from any directory.
  let dataDirBase = file ? path.dirname(file) : cwd;
  if (env.CAIRN_DATA_DIR) {
    merged.dataDir = env.CAIRN_DATA_DIR;
    dataDirBase = cwd;
  }
  const envConcurrency = envInt('CAIRN_CONCURRENCY', env);
  if (envConcurrency !== undefined) merged.concurrency = envConcurrency;
  if (env.CAIRN_DURABILITY) merged.durability = env.CAIRN_DURABILITY;
  if (env.CAIRN_DATABASE_URL) merged.store = postgresAt(env.CAIRN_DATABASE_URL);
  const o = options.overrides ?? {};
  if (o.dataDir !== undefined) {
    merged.dataDir = o.dataDir;
    dataDirBase = cwd;
  }
  if (o.concurrency !== undefined) merged.concurrency = o.concurrency;
  if (o.resumeOnStart !== undefined) merged.resumeOnStart = o.resumeOnStart;
  if (o.databaseUrl !== undefined) merged.store = postgresAt(o.databaseUrl);

  const baseDir = file ? path.dirname(file) : cwd;
  // Everything the result depends on is in the cache key, the data directory's base included: the same
  // settings with dataDir from the file or from CAIRN_DATA_DIR resolve to different directories.
  const input = { merged, file, baseDir, dataDirBase };
  const cached = readCachedConfig(input, env);
  if (cached) return cached;
  const { parseConfig } = await import('./config.js');
  const config = parseConfig(merged, file, baseDir);
  config.dataDir = path.resolve(dataDirBase, config.dataDir);
  writeCachedConfig(input, config, env);
  return config;
}
