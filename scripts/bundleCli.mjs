// Bundles the `cairn` executable (src/cairn.ts, compiled by tsc first) into dist/src/cairn.cjs, run by
// `npm run build`. A read verb then loads one CommonJS file and a few chunks instead of some twenty
// ES modules plus commander. Everything else stays as tsc wrote it: cli/main.js (commander and the
// other verbs) and the packages in node_modules load from where they are and are never copied in.
import { readdirSync, rmSync } from 'node:fs';
import { build } from 'rolldown';

// Chunks are named after their module, without a hash: clear the last build's, so one this build no
// longer makes does not stay behind.
for (const file of readdirSync('dist/src')) if (/^cairn-.*\.cjs$/.test(file)) rmSync(`dist/src/${file}`);

await build({
  input: 'dist/src/cairn.js',
  platform: 'node',
  external: (id) => id === './cli/main.js' || !/^[./]/.test(id),
  logLevel: 'warn',
  output: {
    format: 'cjs',
    // Beside the compiled modules, so a path relative to a module (configCache's ./config.js) holds.
    dir: 'dist/src',
    entryFileNames: 'cairn.cjs',
    chunkFileNames: 'cairn-[name].cjs',
  },
});
