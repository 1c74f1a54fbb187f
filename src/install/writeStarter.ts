/**
 * Writes the starter config and stage programs of `cairn init` into a directory. It never replaces a
 * file: a config someone has edited, or a stage script turned into their real planner, is worth more
 * than a starter, so every target is checked first and each is then created exclusively ('wx').
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { StarterExistsError, UsageError } from '../errors.js';
import { formatJson } from './formatJson.js';
import { STARTER_CONFIG, STARTER_STAGES } from './starterFiles.js';

export const STARTER_CONFIG_NAME = 'cairn.config.json';

export interface WrittenStarter {
  dir: string;
  configFile: string;
  stageFiles: string[];
}

/**
 * Creates `dir` (0700) if missing, then writes cairn.config.json (0600) and stages/*.sh (0700).
 * Throws StarterExistsError naming every file already there, before writing anything.
 */
export function writeStarter(dir: string): WrittenStarter {
  const absDir = path.resolve(dir);
  if (existsSync(absDir) && !statSync(absDir).isDirectory()) {
    throw new UsageError(`${absDir} is a file, not a directory; give \`cairn init\` a directory to write the starter config into`);
  }
  const configFile = path.join(absDir, STARTER_CONFIG_NAME);
  const stagesDir = path.join(absDir, 'stages');
  const stageFiles = Object.keys(STARTER_STAGES).map((name) => path.join(stagesDir, name));
  const present = [configFile, ...stageFiles].filter((f) => existsSync(f));
  if (present.length > 0) {
    throw new StarterExistsError(
      `${present.join(', ')} already exist${present.length === 1 ? 's' : ''}; \`cairn init\` never replaces a file. ` +
        `Start with the config that is there (\`cairn start --config ${configFile}\`), move ${present.length === 1 ? 'it' : 'them'} away, ` +
        'or run `cairn init` on another directory',
    );
  }
  mkdirSync(stagesDir, { recursive: true, mode: 0o700 });
  // 'wx' fails rather than replaces, should a file appear between the check above and the write.
  writeFileSync(configFile, `${formatJson(STARTER_CONFIG)}\n`, { mode: 0o600, flag: 'wx' });
  for (const file of stageFiles) writeFileSync(file, STARTER_STAGES[path.basename(file)], { mode: 0o700, flag: 'wx' });
  return { dir: absDir, configFile, stageFiles };
}
