/**
 * Group commit: the transitions that become ready in the same turn of the event loop (fifty stage
 * results arriving together, a burst of approvals) are committed in one store transaction, so one
 * fsync covers them all. Nobody acts on a transition before its commit: each caller's promise settles
 * only when the batch holding its write is durable, with that write's own outcome.
 */
import type { CommitResult, Store, TransitionWrite } from '../store/store.js';

interface Waiting {
  write: TransitionWrite;
  resolve: (result: CommitResult) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit {
  private waiting: Waiting[] = [];

  constructor(private readonly store: Store) {}

  commit(write: TransitionWrite): Promise<CommitResult> {
    return new Promise((resolve, reject) => {
      // setImmediate runs after the current turn's promise callbacks: everything ready now joins.
      if (this.waiting.length === 0) setImmediate(() => void this.flush());
      this.waiting.push({ write, resolve, reject });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.waiting;
    this.waiting = [];
    try {
      const results = await this.store.commitTransitions(batch.map((w) => w.write));
      batch.forEach((w, i) => w.resolve(results[i]));
    } catch (e) {
      if (batch.length === 1) return batch[0].reject(e);
      // The store rolled the whole batch back. One write's failure must not become the others': each
      // is tried alone, so every caller gets its own outcome.
      await Promise.all(batch.map((w) => this.store.commitTransitions([w.write]).then((r) => w.resolve(r[0]), w.reject)));
    }
  }
}
