/**
 * The version `cairn --version` prints: package.json's, read when asked rather than copied into the
 * build. Both places that load this module sit in dist/src/ (cairn.cjs, the bundle, and version.js
 * beside it, which cli/main.js imports), two levels below the package root.
 */
import { readFileSync } from 'node:fs';

/** Reads package.json's version (a small synchronous file read). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
