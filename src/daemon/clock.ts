/**
 * The daemon's wall clock: Date.now(), plus a test hook. With CAIRN_CLOCK_OFFSET_FILE set, the number
 * of milliseconds in that file is added to wall time, so the chaos suite can jump a running daemon's
 * clock (±1 h) the way an NTP step or a suspended VM does. The file is read at most every 50 ms;
 * without the variable the clock is Date.now itself and costs nothing. Intervals measured within one
 * process use performance.now(), which no clock jump moves.
 */
import { readFileSync } from 'node:fs';

export type Clock = () => number;

const REREAD_MS = 50;

/** A clock whose offset comes from `file` (a test hook: see above). A missing or unreadable file means 0. */
export function offsetClock(file: string): Clock {
  let offset = 0;
  let readAt = -Infinity;
  return () => {
    const mono = performance.now();
    if (mono - readAt >= REREAD_MS) {
      readAt = mono;
      try {
        const value = Number(readFileSync(file, 'utf8').trim());
        offset = Number.isFinite(value) ? value : 0;
      } catch {
        offset = 0;
      }
    }
    return Date.now() + offset;
  };
}

export const wallClock: Clock = process.env.CAIRN_CLOCK_OFFSET_FILE ? offsetClock(process.env.CAIRN_CLOCK_OFFSET_FILE) : Date.now;
