/** pino JSON lines on stdout, pretty in a terminal. Written synchronously so a kill -9 loses no line. */
import { pino, type Logger } from 'pino';

export function createLogger(options: { level?: string; pretty?: boolean; destination?: number } = {}): Logger {
  const level = options.level ?? process.env.CAIRN_LOG_LEVEL ?? 'info';
  const stream = options.destination === 2 ? process.stderr : process.stdout;
  const pretty = options.pretty ?? (Boolean(stream.isTTY) && process.env.CAIRN_LOG_FORMAT !== 'json');
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { translateTime: 'SYS:standard', ignore: 'pid,hostname', destination: options.destination ?? 1 } },
    });
  }
  return pino({ level }, pino.destination({ dest: options.destination ?? 1, sync: true }));
}
