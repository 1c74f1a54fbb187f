/**
 * pino JSON lines on stdout, pretty in a terminal. Both are written synchronously, in this thread, so a
 * kill -9 loses no line that was logged: pino's `transport` would hand pretty lines to a worker thread,
 * which loses the lines it has not written yet (and, in its first tens of ms, every line).
 */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

export function createLogger(options: { level?: string; pretty?: boolean; destination?: number } = {}): Logger {
  const level = options.level ?? process.env.CAIRN_LOG_LEVEL ?? 'info';
  const stream = options.destination === 2 ? process.stderr : process.stdout;
  const pretty = options.pretty ?? (Boolean(stream.isTTY) && process.env.CAIRN_LOG_FORMAT !== 'json');
  if (pretty) {
    // Loaded only in a terminal; a JSON logger never pays for it.
    const build = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    return pino({ level }, build({ translateTime: 'SYS:standard', ignore: 'pid,hostname', destination: options.destination ?? 1, sync: true }));
  }
  return pino({ level }, pino.destination({ dest: options.destination ?? 1, sync: true }));
}
