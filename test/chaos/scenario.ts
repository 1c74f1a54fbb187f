/**
 * The shape every chaos scenario shares (issue 8): it injects one kind of fault into real cairn
 * processes and files, then reports one figure against its target. `quick` runs few iterations so
 * the whole suite fits inside `npm test`; the full run (`npm run chaos`) runs the counts.
 */
export interface ChaosContext {
  /** Few iterations: the `--quick` variant that `npm test` runs. */
  quick: boolean;
  /** A fresh directory of the scenario's own; removed afterwards unless the scenario failed. */
  workDir: string;
  /** Progress lines for the person watching (`npm run chaos` prints them dimmed). */
  log(message: string): void;
}

export interface ChaosOutcome {
  iterations: number;
  /** The measured figure, e.g. "lost 0, duplicates 0, re-executions 7". */
  figure: string;
  held: boolean;
  /** What broke, named precisely, when `held` is false (invariant violations included). */
  failures: string[];
}

export interface ChaosScenario {
  name: string;
  fault: string;
  target: string;
  run(ctx: ChaosContext): Promise<ChaosOutcome>;
}
