/**
 * The change marker of a PostgreSQL store: a dedicated connection LISTENs on the schema's channel,
 * which every transition and new task notifies on commit (cairn_notify_change in the migrations), and
 * the marker counts those notifications. Like SQLite's data_version it ignores the store's own
 * commits (their backend pids are the pool's). If the connection is cut it is made again with
 * backoff; meanwhile, and once after it is back, the marker moves on every read, so the daemon's
 * polling looks at everything rather than missing a change.
 */
import pg from 'pg';
import { toError } from '../errors.js';
import { quoteIdent } from './migratePostgres.js';

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;

export class ChangeListener {
  private count = 0;
  /** The connection being made or in use; events from any other (an older one ending late) are ignored. */
  private client: pg.Client | null = null;
  private isListening = false;
  private isClosed = false;
  private started: Promise<void> | null = null;
  private retryMs = RECONNECT_MIN_MS;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly changeListeners = new Set<() => void>();
  /** The last reason listening failed, for diagnostics. */
  lastError: Error | null = null;

  constructor(
    private readonly config: pg.ClientConfig,
    readonly channel: string,
    /** Backend pids of the store's own pool: their notifications are not changes by others. */
    private readonly ownPids: ReadonlySet<number>,
  ) {}

  /** Starts listening on first use; resolves with the current count. */
  async marker(): Promise<number> {
    this.started ??= this.connect();
    await this.started;
    if (!this.isListening) this.count++;
    return this.count;
  }

  private async connect(): Promise<void> {
    if (this.isClosed) return;
    const client = new pg.Client(this.config);
    this.client = client;
    // Registered before connecting: an error event with no listener would end the process.
    client.on('error', (e) => this.lost(client, e));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    client.on('notification', (n) => {
      if (this.ownPids.has(n.processId)) return;
      this.count++;
      this.announce();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.channel)}`);
    } catch (e) {
      this.lost(client, e);
      return;
    }
    if (this.isClosed || this.client !== client) {
      await client.end().catch(() => undefined);
      return;
    }
    this.isListening = true;
    this.retryMs = RECONNECT_MIN_MS;
    // Whatever was committed while we were not listening is unknown: count it as a change.
    this.count++;
    this.announce();
  }

  /** Calls `listener` on each change counted from now on; returns a function that stops it. */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private announce(): void {
    for (const listener of this.changeListeners) {
      try {
        listener();
      } catch {
        // The listener's own failure: the count has moved on, and the next poll sees it.
      }
    }
  }

  private lost(client: pg.Client, e: unknown): void {
    if (client !== this.client) return; // an older connection's late event, or our own end()
    this.lastError = toError(e);
    this.isListening = false;
    this.client = null;
    client.end().catch(() => undefined);
    if (this.isClosed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
  }

  async close(): Promise<void> {
    this.isClosed = true;
    this.changeListeners.clear();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const client = this.client;
    this.client = null;
    this.isListening = false;
    if (client) await client.end().catch(() => undefined);
  }
}
