/**
 * When a cron expression fires, computed from an injected time instead of a running timer: the
 * heartbeat decides "is a snapshot due?" from the clock it is given, so tests can step through 60 days
 * in seconds. node-cron parses the expression and matches days (its L / nth-weekday rules included);
 * only the walk through candidate times is ours, because matching every minute of a month one by one
 * costs ~50 µs each. Times are local, as node-cron's are.
 */
import cron, { type ScheduledTask } from 'node-cron';
import { ConfigError, toError } from '../errors.js';

interface Schedule {
  matcher: ScheduledTask;
  seconds: number[];
  minutes: number[];
  hours: number[];
}

const schedules = new Map<string, Schedule>();
const DAY_MS = 86_400_000;

/** Throws ConfigError naming `key` when `pattern` is not a cron expression node-cron accepts. Pure. */
export function assertCronPattern(pattern: string, key: string): void {
  try {
    cron.parse(pattern);
  } catch (e) {
    throw new ConfigError(`${key}: "${pattern}" is not a cron expression (${toError(e).message}); write it like "0 * * * *" (hourly)`);
  }
}

function scheduleOf(pattern: string): Schedule {
  let schedule = schedules.get(pattern);
  if (!schedule) {
    const fields = cron.parse(pattern);
    // A task that is never started: node-cron keeps no timer for it; we only ask it whether a day matches.
    const matcher = cron.createTask(pattern, () => undefined);
    const sort = (values: number[]) => [...new Set(values)].sort((a, b) => a - b);
    schedule = { matcher, seconds: sort(fields.second), minutes: sort(fields.minute), hours: sort(fields.hour) };
    schedules.set(pattern, schedule);
  }
  return schedule;
}

function startOfLocalDay(ms: number): Date {
  const d = new Date(ms);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate());
}

/** Whether the expression fires at all on the local day starting at `day` (month, day of month, weekday). */
function dayMatches(s: Schedule, day: Date): boolean {
  return s.matcher.match(new Date(day.getFullYear(), day.getMonth(), day.getDate(), s.hours[0], s.minutes[0], s.seconds[0]));
}

function* timesOfDay(s: Schedule, day: Date, descending: boolean): Generator<number> {
  const order = (values: number[]) => (descending ? [...values].reverse() : values);
  for (const h of order(s.hours)) {
    for (const m of order(s.minutes)) {
      for (const sec of order(s.seconds)) {
        yield new Date(day.getFullYear(), day.getMonth(), day.getDate(), h, m, sec).getTime();
      }
    }
  }
}

/** The latest time in (afterMs, upToMs] at which `pattern` fires, or null. Pure apart from a cache. */
export function previousTick(pattern: string, upToMs: number, afterMs: number): number | null {
  const s = scheduleOf(pattern);
  for (let day = startOfLocalDay(upToMs); day.getTime() + DAY_MS > afterMs; day = new Date(day.getFullYear(), day.getMonth(), day.getDate() - 1)) {
    if (!dayMatches(s, day)) continue;
    for (const t of timesOfDay(s, day, true)) {
      if (t > upToMs) continue;
      return t > afterMs ? t : null;
    }
  }
  return null;
}

/** The first time after `afterMs` at which `pattern` fires, looking at most `horizonDays` ahead, or null. */
export function nextTick(pattern: string, afterMs: number, horizonDays = 400): number | null {
  const s = scheduleOf(pattern);
  const first = startOfLocalDay(afterMs);
  for (let i = 0; i <= horizonDays; i++) {
    const day = new Date(first.getFullYear(), first.getMonth(), first.getDate() + i);
    if (!dayMatches(s, day)) continue;
    for (const t of timesOfDay(s, day, false)) if (t > afterMs) return t;
  }
  return null;
}
