/**
 * Runs one piece of async work at a time, folding a burst of requests into at most one more run: a
 * request while it runs asks for another pass after the current one, however many arrive. The daemon's
 * dispatch (requestTick) and its look at the store (wake) are both driven this way, so a flood of
 * doorbell rings or stage endings costs one extra pass, not one each.
 */
export class CoalescedRun {
  /** The run in progress (with the passes it owes), or null. */
  private running: Promise<void> | null = null;
  private isPending = false;

  /**
   * `work` must not throw (catch and log inside it). `shouldStop` ends a pending pass early (the daemon
   * stopping); `onIdle` hears each time the work has caught up with every request.
   */
  constructor(
    private readonly work: () => Promise<void>,
    private readonly shouldStop: () => boolean,
    private readonly onIdle: () => void = () => undefined,
  ) {}

  /** Runs the work now, or once more after the run in progress. Never waits, never throws. */
  request(): void {
    if (this.running) {
      this.isPending = true;
      return;
    }
    this.running = (async () => {
      try {
        do {
          this.isPending = false;
          await this.work();
        } while (this.isPending && !this.shouldStop());
      } finally {
        this.running = null;
      }
      this.onIdle();
    })();
  }

  /** Resolves once no run is in progress (at once when none is). */
  async whenIdle(): Promise<void> {
    while (this.running) await this.running;
  }
}
