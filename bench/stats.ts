/** Small helpers for honest figures: percentiles over many samples, timing, fresh directories. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function percentile(sortedMs: number[], p: number): number {
  if (sortedMs.length === 0) return NaN;
  const i = Math.min(sortedMs.length - 1, Math.max(0, Math.ceil((p / 100) * sortedMs.length) - 1));
  return sortedMs[i];
}

/**
 * The median of `runs` measurements of a whole-workload rate (one run of a second or two moves by a
 * fifth on a shared machine), with every value kept so the table can say how far they spread.
 */
export async function medianOfRuns(runs: number, measure: () => Promise<number>): Promise<{ median: number; values: number[] }> {
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(await measure());
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor((sorted.length - 1) / 2)], values };
}

/** `9,412 / 10,120 / 11,003`: the runs behind a median, lowest first. */
export function spread(values: number[]): string {
  return [...values].sort((a, b) => a - b).map((v) => Math.round(v).toLocaleString('en-US')).join(' / ');
}

export function summarize(samplesMs: number[]) {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), p999: percentile(sorted, 99.9), max: sorted.at(-1)! };
}

/** A figure as the table and the history print it: whole above 100, two decimals above 1, else three digits. */
export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (value >= 100) return value.toFixed(0);
  if (value >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A fresh directory for one scenario, removed afterwards. */
export async function inFreshDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export type Durability = 'full' | 'normal';

export interface Row {
  scenario: string;
  durability: Durability | '-';
  metric: string;
  value: number;
  unit: string;
  /** What the issue asks for, in words, and whether this run met it (null: a reference, no target). */
  target: string;
  held: boolean | null;
}

export interface BenchOptions {
  quick: boolean;
  /** Figures measured earlier in this run that later targets are ratios of (the SQLite limit). */
  reference: Map<string, number>;
}
