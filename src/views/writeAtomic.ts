/** Writes a file so readers see the old content or the new, never half of it: temp file + rename. */
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export function writeAtomic(file: string, content: string): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  writeFileSync(temp, content, { mode: 0o600 });
  renameSync(temp, file);
}
