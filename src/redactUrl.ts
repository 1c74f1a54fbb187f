/**
 * A connection URL without its password, for messages and logs. Works on text that is not a valid URL
 * too (that is when it gets printed, in "is not a database URL"): a password may hold any character,
 * `/`, `#`, `?` and `@` included, so everything between the user's `:` and the last `@` goes. Pure.
 */
export function redactUrl(url: string): string {
  const at = url.lastIndexOf('@');
  if (at < 0) return url;
  const scheme = url.indexOf('//');
  const userStart = scheme >= 0 && scheme < at ? scheme + 2 : 0;
  const colon = url.indexOf(':', userStart);
  if (colon < 0 || colon > at) return url;
  return `${url.slice(0, colon)}:***${url.slice(at)}`;
}
