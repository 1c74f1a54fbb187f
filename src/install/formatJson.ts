/** JSON text for people to read and edit: short objects on one line, long ones a key per line. */
const LINE_WIDTH = 100;

/** `value` on one line, with a space after each `:` and `,`. Pure. */
function inlineJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(inlineJson).join(', ')}]`;
  const entries = Object.entries(value);
  return entries.length === 0 ? '{}' : `{ ${entries.map(([k, v]) => `${JSON.stringify(k)}: ${inlineJson(v)}`).join(', ')} }`;
}

/** The outermost object a key per line; below it, each object on one line when it fits in LINE_WIDTH. Pure. */
export function formatJson(value: unknown, indent = ''): string {
  const inline = inlineJson(value);
  if (value === null || typeof value !== 'object' || Object.keys(value).length === 0) return inline;
  if (indent !== '' && indent.length + inline.length <= LINE_WIDTH) return inline;
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (indent.length + inline.length <= LINE_WIDTH) return inline;
    return `[\n${value.map((v) => `${inner}${formatJson(v, inner)}`).join(',\n')}\n${indent}]`;
  }
  return `{\n${Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatJson(v, inner)}`).join(',\n')}\n${indent}}`;
}
