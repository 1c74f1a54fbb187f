/**
 * The import layering of src/ and machines/, read from the source by madge (the same graph
 * `npm run deps` prints circles from): no import circle, and none of the imports STYLE.md §14 says
 * go upward. Each rule is checked through any chain of imports, so an upward import cannot hide behind
 * a module in between (as the executors once reached the store through state/stateNamespace.ts).
 *
 * Above the daemon sit only src/cli/ (the verbs that start, inspect or tick it), src/index.ts (the
 * library's openCairn, which runs one) and src/cairn.ts (the executable, which loads src/cli/).
 * Everything else runs inside a daemon or without one, and imports nothing of src/daemon/.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import madge from 'madge';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

type Graph = Record<string, string[]>;

const under = (...prefixes: string[]) => (file: string) => prefixes.some((p) => (p.endsWith('/') ? file.startsWith(p) : file === p));
const ABOVE_THE_DAEMON = under('src/cli/', 'src/index.ts', 'src/cairn.ts');

interface Rule {
  name: string;
  /** The files the rule binds. */
  from: (file: string) => boolean;
  /** The files they may not reach through any chain of imports. */
  to: (file: string) => boolean;
}

const RULES: Rule[] = [
  {
    name: 'src/store/ imports nothing of src/cli/ or src/engine/ (the shapes both print live in src/taskJson.ts)',
    from: under('src/store/'),
    to: under('src/cli/', 'src/engine/'),
  },
  {
    name: 'src/executors/ imports nothing of src/store/ (they see key-value state through state/stateNamespace.ts only)',
    from: under('src/executors/'),
    to: under('src/store/'),
  },
  {
    name: 'nothing below the daemon imports src/daemon/ (only src/cli/, src/index.ts and src/cairn.ts are above it)',
    from: (file) => !under('src/daemon/')(file) && !ABOVE_THE_DAEMON(file),
    to: under('src/daemon/'),
  },
];

/** Every file of `rule.from` that reaches a file of `rule.to`, as the chain of imports `a -> b -> c`. Pure. */
function breaches(graph: Graph, rule: Rule): string[] {
  const found: string[] = [];
  for (const start of Object.keys(graph).filter(rule.from).sort()) {
    const parent = new Map<string, string>([[start, '']]);
    const queue = [start];
    while (queue.length > 0) {
      const file = queue.shift()!;
      for (const next of graph[file] ?? []) {
        if (parent.has(next)) continue;
        parent.set(next, file);
        if (rule.to(next)) {
          const chain = [next];
          for (let at = file; at; at = parent.get(at)!) chain.unshift(at);
          found.push(chain.join(' -> '));
        } else {
          queue.push(next);
        }
      }
    }
  }
  return found;
}

let graph: Graph;
let circles: string[][];
let skipped: string[];

beforeAll(async () => {
  const result = await madge(['src', 'machines'], { baseDir: ROOT, fileExtensions: ['ts'], tsConfig: path.join(ROOT, 'tsconfig.json') });
  graph = result.obj();
  circles = result.circular();
  skipped = result.warnings().skipped;
}, 120_000);

describe('the import layering of src/ and machines/', () => {
  it('is read whole: every import resolves (a `.js` specifier to its `.ts` file), dynamic import() included', () => {
    expect(skipped).toEqual([]);
    expect(Object.keys(graph).length).toBeGreaterThan(100);
    expect(graph['src/migrateStore/copyStore.ts']).toContain('src/store/store.ts');
    // cli/main.ts loads its verbs with import(), so a read verb does not load the daemon.
    expect(graph['src/cli/main.ts']).toContain('src/cli/start.ts');
  });

  it('has no import circle', () => {
    expect(circles.map((circle) => circle.join(' -> '))).toEqual([]);
  });

  for (const rule of RULES) {
    it(rule.name, () => {
      expect(breaches(graph, rule)).toEqual([]);
    });
  }

  it('the rules catch an upward import through a module in between, and allow the parts above the daemon', () => {
    const upward: Graph = {
      'src/store/sqlite.ts': ['src/state/helper.ts'],
      'src/state/helper.ts': ['src/engine/engine.ts'],
      'src/executors/runStage.ts': ['src/state/stateNamespace.ts'],
      'src/state/stateNamespace.ts': ['src/store/store.ts'],
      'src/views/views.ts': ['src/index.ts'],
      'src/index.ts': ['src/daemon/daemon.ts'],
      'src/cli/start.ts': ['src/daemon/daemon.ts'],
      'src/daemon/daemon.ts': ['src/store/store.ts'],
    };
    expect(RULES.map((rule) => breaches(upward, rule))).toEqual([
      ['src/store/sqlite.ts -> src/state/helper.ts -> src/engine/engine.ts'],
      ['src/executors/runStage.ts -> src/state/stateNamespace.ts -> src/store/store.ts'],
      ['src/views/views.ts -> src/index.ts -> src/daemon/daemon.ts'],
    ]);
  });
});
