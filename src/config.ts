/**
 * The config schema (DESIGN §6). One strict zod schema: an unknown or mistyped key is an error that
 * names its path. Finding, merging and caching the config is loadConfig.ts (which loads zod only when
 * a config has not been validated before).
 */
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors.js';

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "30s", "10m", "1h", "2d" → milliseconds; a bare number is milliseconds. */
export function parseDurationMs(value: string | number): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
  if (!match) return null;
  return Math.round(Number(match[1]) * DURATION_UNITS_MS[match[2]]);
}

const Duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDurationMs(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration; write it like "30s", "10m" or "1h"` });
    return z.NEVER;
  }
  return ms;
});

const Argv = z.array(z.string().min(1)).min(1, 'must name the program to run, e.g. ["./stages/plan.sh"]');
const Env = z.record(z.string(), z.string());

const CommandStage = z.strictObject({
  run: Argv,
  cwd: z.string().optional(),
  env: Env.optional(),
  timeout: Duration.optional(),
  idleTimeout: Duration.optional(),
});
const ModuleStage = z.strictObject({
  module: z.string().min(1),
  timeout: Duration.optional(),
});
/** `{}` is an unconfigured stage: valid in a file, refused when a task reaches it (the message says how to fix it). */
const EmptyStage = z.strictObject({});
const Stage = z.union([CommandStage, ModuleStage, EmptyStage]);

const ApprovalMode = z.enum(['manual', 'auto']);
const PositiveInt = z.number().int().min(1);

export const ConfigSchema = z.strictObject({
  dataDir: z.string().min(1).default('state'),
  concurrency: PositiveInt.default(4),
  durability: z.enum(['full', 'normal']).default('full'),
  resumeOnStart: z.boolean().default(true),
  shutdownGraceMs: z.number().int().min(0).default(10_000),
  views: z.boolean().default(true),
  store: z
    .discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('sqlite'), path: z.string().optional() }),
      z.strictObject({
        kind: z.literal('postgres'),
        url: z.string().min(1),
        // One schema per cairn installation (default `public`); several may share a database.
        schema: z
          .string()
          .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case PostgreSQL schema name, e.g. "cairn"')
          .optional(),
      }),
    ])
    .default({ kind: 'sqlite' }),
  approvals: z
    .strictObject({ plan: ApprovalMode.default('manual'), implementation: ApprovalMode.default('manual') })
    .default({ plan: 'manual', implementation: 'manual' }),
  limits: z
    .strictObject({
      stageAttempts: PositiveInt.default(3),
      reviewCycles: z.number().int().min(0).default(3),
      verifyCycles: z.number().int().min(0).default(3),
      outputBytes: PositiveInt.default(1_048_576),
      retryBackoff: Duration.default(1000),
      retryBackoffMax: Duration.default(300_000),
    })
    .default({
      stageAttempts: 3,
      reviewCycles: 3,
      verifyCycles: 3,
      outputBytes: 1_048_576,
      retryBackoff: 1000,
      retryBackoffMax: 300_000,
    }),
  stages: z
    .strictObject({
      plan: Stage.default({}),
      implement: Stage.default({}),
      review: Stage.default({}),
      verify: Stage.default({}),
    })
    .default({ plan: {}, implement: {}, review: {}, verify: {} }),
  heartbeat: z
    .strictObject({
      cron: z.string().default('* * * * *'),
      staleAfter: Duration.default(600_000),
      approvalReminderAfter: Duration.default(86_400_000),
    })
    .default({ cron: '* * * * *', staleAfter: 600_000, approvalReminderAfter: 86_400_000 }),
  snapshots: z
    .strictObject({
      cron: z.string().default('0 * * * *'),
      keepHourly: z.number().int().min(0).default(24),
      keepDaily: z.number().int().min(0).default(30),
      archive: z.boolean().default(true),
      onStart: z.boolean().default(true),
      // How often the heartbeat checks that the newest snapshot would restore; null: never.
      drillEvery: Duration.nullable().default(86_400_000),
    })
    .default({ cron: '0 * * * *', keepHourly: 24, keepDaily: 30, archive: true, onStart: true, drillEvery: 86_400_000 }),
  history: z.strictObject({ keepDays: z.number().int().min(1).nullable().default(null) }).default({ keepDays: null }),
  cycle: z
    .strictObject({
      run: Argv,
      cwd: z.string().optional(),
      env: Env.optional(),
      timeout: Duration.optional(),
      every: PositiveInt.default(1),
    })
    .nullable()
    .default(null),
  inbox: z.strictObject({ dir: z.string().optional() }).default({}),
  state: z
    .strictObject({
      // Unset: the store's own kind (a sqlite store keeps state in sqlite, a postgres store in postgres);
      // src/state/openStateBackend.ts decides, since a default here cannot see `store`.
      backend: z.enum(['sqlite', 'postgres', 'json', 'redis']).optional(),
      dir: z.string().optional(),
      // redis: the server; postgres: a database other than the store's (default: the store's).
      url: z.string().optional(),
      prefix: z.string().optional(),
    })
    .default({}),
});

export type ConfigFile = z.input<typeof ConfigSchema>;
export type Config = z.infer<typeof ConfigSchema> & {
  /** Directory that relative paths in the config file are resolved against. */
  baseDir: string;
  /** The file the config came from, or null for defaults. */
  source: string | null;
};
export type StageConfig = z.infer<typeof Stage>;
export type CommandStageConfig = z.infer<typeof CommandStage>;
export type ModuleStageConfig = z.infer<typeof ModuleStage>;

function formatPath(pathParts: PropertyKey[]): string {
  if (pathParts.length === 0) return '(top level)';
  return pathParts.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
}

/** Validates a parsed config object; throws ConfigError naming each bad key path. Pure. */
export function parseConfig(raw: unknown, source: string | null, baseDir: string): Config {
  const result = ConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    const where = source ?? 'config';
    const lines = result.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const keys = issue.keys.map((k) => (issue.path.length ? `${formatPath(issue.path)}.${k}` : k));
        return `  ${keys.join(', ')}: unknown key${keys.length > 1 ? 's' : ''}`;
      }
      return `  ${formatPath(issue.path)}: ${issue.message}`;
    });
    throw new ConfigError(`invalid config in ${where}:\n${lines.join('\n')}`);
  }
  return { ...result.data, baseDir, source };
}

/** A config with every default, for the library API and tests. Pure. */
export function defaultConfig(partial: ConfigFile = {}, baseDir = process.cwd()): Config {
  const config = parseConfig(partial, null, baseDir);
  config.dataDir = path.resolve(baseDir, config.dataDir);
  return config;
}
