/**
 * The config schema (DESIGN §6). One strict zod schema: every error names its key path, and an
 * unknown key the known one it was probably meant to be. Finding, merging and caching the config is
 * loadConfig.ts (which loads zod only when a config has not been validated before).
 */
import path from 'node:path';
import { z } from 'zod';
import { closestName } from './closestName.js';
import { ConfigError } from './errors.js';

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "30s", "10m", "1h", "2d" → milliseconds; a bare number is milliseconds. */
export function parseDurationMs(value: string | number): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
  if (!match) return null;
  return Math.round(Number(match[1]) * DURATION_UNITS_MS[match[2]]);
}

const DURATION_HINT = 'write it like "30s", "10m" or "1h" (a bare number is milliseconds)';

/** A duration: "500ms", "30s", "10m", "1h", "2d", or a bare number of milliseconds. */
const Duration = z.union([z.string(), z.number()], { error: `not a duration; ${DURATION_HINT}` }).transform((value, ctx) => {
  const ms = parseDurationMs(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a duration; ${DURATION_HINT}` });
    return z.NEVER;
  }
  return ms;
});

/** "unknown key `timout` (did you mean `timeout`?)"; with no near name, the names there are. Pure. */
function unknownKeysMessage(keys: readonly string[], known: readonly string[]): string {
  const named = keys.map((key) => {
    const near = closestName(key, known);
    return near === undefined ? `\`${key}\`` : `\`${key}\` (did you mean \`${near}\`?)`;
  });
  const anyNear = keys.some((key) => closestName(key, known) !== undefined);
  const list = anyNear ? '' : known.length ? `; the keys here are ${known.join(', ')}` : '; nothing else belongs here';
  return `unknown key${keys.length > 1 ? 's' : ''} ${named.join(', ')}${list}`;
}

/** z.strictObject whose unknown keys are named with the nearest known key: such a key is nearly always a typo. */
function strictObject<Shape extends z.core.$ZodLooseShape>(shape: Shape) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? unknownKeysMessage(issue.keys, known) : undefined),
  });
}

const Argv = z.array(z.string().min(1)).min(1, 'must name the program to run, e.g. ["./stages/plan.sh"]');
const Env = z.record(z.string(), z.string());

const CommandStage = strictObject({
  run: Argv,
  cwd: z.string().optional(),
  env: Env.optional(),
  timeout: Duration.optional(),
  idleTimeout: Duration.optional(),
});
const ModuleStage = strictObject({
  module: z.string().min(1),
  timeout: Duration.optional(),
});
/** `{}` is an unconfigured stage: valid in a file, refused when a task reaches it (the message says how to fix it). */
const EmptyStage = strictObject({});
const STAGE_KEYS = [...new Set([...Object.keys(CommandStage.shape), ...Object.keys(ModuleStage.shape)])];
/** Names a mistyped key of a stage that has neither `run` nor `module` against every stage key (`rn` → `run`). */
const AnyStageKey = strictObject(Object.fromEntries(STAGE_KEYS.map((k) => [k, z.unknown().optional()])));
const STAGE_FORMS = '{"run": [argv…]} or {"module": "file.mjs"}';

type StageInput = z.input<typeof CommandStage> | z.input<typeof ModuleStage> | Record<string, never>;
type StageOutput = z.output<typeof CommandStage> | z.output<typeof ModuleStage> | Record<string, never>;

/** The one shape a stage value is checked against, chosen by its keys, or what is wrong with it. Pure. */
function stageShapeFor(value: unknown): z.ZodType | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `a stage is ${STAGE_FORMS}`;
  const hasRun = 'run' in value;
  const hasModule = 'module' in value;
  if (hasRun && hasModule) return 'a stage has "run" (a command) or "module" (an in-process module), not both';
  if (hasRun) return CommandStage;
  if (hasModule) return ModuleStage;
  const keys = Object.keys(value);
  if (keys.some((k) => !STAGE_KEYS.includes(k))) return AnyStageKey;
  if (keys.length > 0) return `${keys.join(', ')} without a program: a stage is ${STAGE_FORMS}`;
  return EmptyStage;
}

/**
 * A stage: a command (`run`), a module (`module`) or unconfigured (`{}`), told apart by its keys and
 * then checked against that one shape. A z.union tried all three and reported the branch that failed
 * least, so a bad timeout in a command stage was reported as unknown keys of the empty stage.
 */
const Stage = z.custom<StageInput>().transform((value, ctx): StageOutput => {
  const shape = stageShapeFor(value);
  if (typeof shape === 'string') {
    ctx.addIssue({ code: 'custom', message: shape });
    return z.NEVER;
  }
  const result = shape.safeParse(value);
  if (result.success) return result.data as StageOutput;
  // The branch's own issues, paths relative to the stage (the enclosing objects prefix theirs).
  for (const issue of result.error.issues) ctx.addIssue({ ...issue });
  return z.NEVER;
});

const ApprovalMode = z.enum(['manual', 'auto']);
const PositiveInt = z.number().int().min(1);

export const ConfigSchema = strictObject({
  dataDir: z.string().min(1).default('state'),
  concurrency: PositiveInt.default(4),
  durability: z.enum(['full', 'normal']).default('full'),
  resumeOnStart: z.boolean().default(true),
  shutdownGraceMs: z.number().int().min(0).default(10_000),
  views: z.boolean().default(true),
  store: z
    .discriminatedUnion('kind', [
      strictObject({ kind: z.literal('sqlite'), path: z.string().optional() }),
      strictObject({
        kind: z.literal('postgres'),
        url: z.string().min(1),
        // One schema per cairn installation (default `public`); several may share a database.
        schema: z
          .string()
          .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case PostgreSQL schema name, e.g. "cairn"')
          .optional(),
      }),
    ], { error: 'must be {"kind": "sqlite"} or {"kind": "postgres", "url": "postgres://…"}' })
    .default({ kind: 'sqlite' }),
  approvals: strictObject({ plan: ApprovalMode.default('manual'), implementation: ApprovalMode.default('manual') }).default({
    plan: 'manual',
    implementation: 'manual',
  }),
  limits: strictObject({
    stageAttempts: PositiveInt.default(3),
    reviewCycles: z.number().int().min(0).default(3),
    verifyCycles: z.number().int().min(0).default(3),
    outputBytes: PositiveInt.default(1_048_576),
    retryBackoff: Duration.default(1000),
    retryBackoffMax: Duration.default(300_000),
  }).default({
    stageAttempts: 3,
    reviewCycles: 3,
    verifyCycles: 3,
    outputBytes: 1_048_576,
    retryBackoff: 1000,
    retryBackoffMax: 300_000,
  }),
  stages: strictObject({
    plan: Stage.default({}),
    implement: Stage.default({}),
    review: Stage.default({}),
    verify: Stage.default({}),
  }).default({ plan: {}, implement: {}, review: {}, verify: {} }),
  heartbeat: strictObject({
    cron: z.string().default('* * * * *'),
    staleAfter: Duration.default(600_000),
    approvalReminderAfter: Duration.default(86_400_000),
  }).default({ cron: '* * * * *', staleAfter: 600_000, approvalReminderAfter: 86_400_000 }),
  snapshots: strictObject({
    cron: z.string().default('0 * * * *'),
    keepHourly: z.number().int().min(0).default(24),
    keepDaily: z.number().int().min(0).default(30),
    archive: z.boolean().default(true),
    onStart: z.boolean().default(true),
    // How often the heartbeat checks that the newest snapshot would restore; null: never.
    drillEvery: Duration.nullable().default(86_400_000),
  }).default({ cron: '0 * * * *', keepHourly: 24, keepDaily: 30, archive: true, onStart: true, drillEvery: 86_400_000 }),
  history: strictObject({ keepDays: z.number().int().min(1).nullable().default(null) }).default({ keepDays: null }),
  cycle: strictObject({
    run: Argv,
    cwd: z.string().optional(),
    env: Env.optional(),
    timeout: Duration.optional(),
    every: PositiveInt.default(1),
  }).nullable().default(null),
  inbox: strictObject({ dir: z.string().optional() }).default({}),
  state: strictObject({
    // Unset: the store's own kind (a sqlite store keeps state in sqlite, a postgres store in postgres);
    // src/state/openStateBackend.ts decides, since a default here cannot see `store`.
    backend: z.enum(['sqlite', 'postgres', 'json', 'redis']).optional(),
    dir: z.string().optional(),
    // redis: the server; postgres: a database other than the store's (default: the store's).
    url: z.string().optional(),
    prefix: z.string().optional(),
  }).default({}),
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
        return `  ${keys.join(', ')}: ${issue.message}`;
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
