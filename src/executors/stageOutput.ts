/** Turns what a stage printed into its stored output. Pure. */

/** stdout kept as JSON when it parses as JSON, else as trimmed text. */
export function parseStageOutput(stdout: string): unknown {
  const text = stdout.trim();
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
