/**
 * Progress of a long verb on a terminal: one line on stderr, redrawn in place (carriage return, then
 * erase to the end of the line) and erased when the verb ends, so what stays on the screen is the
 * verb's own output. When stderr is not a terminal (a pipe, a file, a service's log) it writes nothing
 * at all: a log full of carriage returns helps no one, and scripts read stderr.
 */
import type { OnProgress, ProgressUpdate } from '../progressUpdate.js';

/** Redraws at most this often: a copy reports thousands of steps a second, a terminal needs a few. */
const REDRAW_MS = 100;

export interface ProgressLine {
  /** Shows an update (throttled); pass it to the operation. */
  update: OnProgress;
  /** Erases the line, if one was drawn. Call it in a finally, so an error is not printed beside it. */
  end(): void;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** The text of one update, e.g. "backup: copying pages 512/2048 (25%)". Pure. */
export function formatProgress(verb: string, u: ProgressUpdate): string {
  if (u.done === undefined) return `${verb}: ${u.step}…`;
  const amount = (n: number) => (u.unit === 'bytes' ? formatBytes(n) : String(n));
  const unit = u.unit && u.unit !== 'bytes' ? ` ${u.unit}` : '';
  const of = u.total !== undefined ? `${amount(u.done)}/${amount(u.total)}${unit}` : `${amount(u.done)}${unit}`;
  const percent = u.total ? ` (${Math.min(100, Math.floor((u.done / u.total) * 100))}%)` : '';
  return `${verb}: ${u.step} ${of}${percent}`;
}

/**
 * A progress line for `verb` on `stream` (stderr by default). Inert unless the stream is a TTY.
 * Writes to the stream.
 */
export function progressLine(verb: string, stream: NodeJS.WriteStream = process.stderr): ProgressLine {
  if (!stream.isTTY) return { update: () => {}, end: () => {} };
  let isDrawn = false;
  let lastDrawMs = 0;
  let lastStep = '';
  return {
    update(u) {
      const now = performance.now();
      const isFinal = u.total !== undefined && u.done !== undefined && u.done >= u.total;
      // A new step or the end of one is always shown; the updates in between at most every REDRAW_MS.
      if (u.step === lastStep && !isFinal && now - lastDrawMs < REDRAW_MS) return;
      lastStep = u.step;
      lastDrawMs = now;
      const width = Math.max(20, (stream.columns || 80) - 1); // a line that wraps cannot be redrawn in place
      stream.write(`\r\x1b[K${formatProgress(verb, u).slice(0, width)}`);
      isDrawn = true;
    },
    end() {
      if (isDrawn) stream.write('\r\x1b[K');
      isDrawn = false;
    },
  };
}
