/**
 * Key-value state in Redis (ioredis), for stage programs spread over machines. Keys, all under the
 * configured prefix (default `cairn:`), none ever given a TTL:
 *
 *   <prefix>state:namespaces                      SET   namespaces ever written
 *   <prefix>state:ns:<ns>:keys                    HASH  key → {"value": …, "timestamp": "…"}
 *   <prefix>state:ns:<ns>:checkpoints             HASH  checkpoint name → when it was taken
 *   <prefix>state:ns:<ns>:checkpoint:<name>       HASH  a whole copy of the keys hash (COPY, Redis ≥ 6.2)
 *
 * Checkpoint and restore are one MULTI/EXEC each, so a copy is of one moment. Redis being down is not
 * waited out: the offline queue is off and connecting gives up after a few seconds, with an error
 * naming the URL.
 */
import { Redis } from 'ioredis';
import { StateBackendError, toError } from '../errors.js';
import {
  assertKey,
  assertName,
  encodeValue,
  noCheckpoint,
  redactUrl,
  sortCheckpoints,
  sortEntries,
  stateTimestamp,
  type CheckpointInfo,
  type JsonValue,
  type NamespaceDump,
  type StateBackend,
  type StateEntry,
} from './stateBackend.js';

const CONNECT_TIMEOUT_MS = 3_000;

function decodeField(key: string, text: string): StateEntry {
  const parsed = JSON.parse(text) as { value: JsonValue; timestamp: string };
  return { key, value: parsed.value, updatedAt: parsed.timestamp };
}

function encodeField(entry: StateEntry): string {
  return JSON.stringify({ value: entry.value, timestamp: entry.updatedAt });
}

type MultiResult = [error: Error | null, result: unknown][] | null;

export class RedisStateBackend implements StateBackend {
  readonly kind = 'redis' as const;
  readonly location: string;

  private constructor(
    private readonly client: Redis,
    url: string,
    private readonly prefix: string,
    private readonly now: () => number,
  ) {
    this.location = `${redactUrl(url)} (prefix ${prefix})`;
  }

  /**
   * Connects to `url`; throws StateBackendError naming it when Redis cannot be reached within a few
   * seconds. Opens a TCP connection that close() ends.
   */
  static async connect(url: string, prefix = 'cairn:', now: () => number = Date.now): Promise<RedisStateBackend> {
    let lastError: Error | null = null;
    let hasConnected = false;
    let client: Redis;
    try {
      client = new Redis(url, {
        lazyConnect: true,
        connectTimeout: CONNECT_TIMEOUT_MS,
        // Fail a command at once while disconnected instead of queueing it until Redis returns.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        // Once connected, keep reconnecting in the background (a long-lived daemon outlives a Redis
        // restart) while callers get errors straight away, not a hang. A first connection that fails is
        // not retried: the caller hears at once, and no reconnect timer keeps a CLI process alive.
        retryStrategy: (times) => (hasConnected ? Math.min(times * 200, 2_000) : null),
      });
    } catch (e) {
      throw new StateBackendError(`state.url ${redactUrl(url)} is not a Redis URL (${toError(e).message}); write it like redis://127.0.0.1:6379/0`, { cause: e });
    }
    client.on('error', (e: Error) => (lastError = e));
    try {
      await client.connect();
      hasConnected = true;
    } catch (e) {
      // Already 'end' when the first connect failed; disconnecting again arms a 2 s timer on a dead socket.
      if (client.status !== 'end') client.disconnect();
      const reason = (lastError ?? toError(e)).message;
      throw new StateBackendError(
        `cannot reach Redis at ${redactUrl(url)} (${reason}); start Redis there, or point state.url at a running one, or choose another state.backend`,
        { cause: lastError ?? e },
      );
    }
    return new RedisStateBackend(client, url, prefix, now);
  }

  private k = {
    namespaces: () => `${this.prefix}state:namespaces`,
    keys: (ns: string) => `${this.prefix}state:ns:${ns}:keys`,
    checkpoints: (ns: string) => `${this.prefix}state:ns:${ns}:checkpoints`,
    checkpoint: (ns: string, name: string) => `${this.prefix}state:ns:${ns}:checkpoint:${name}`,
  };

  /** Runs a Redis call, turning connection failures into a StateBackendError that names the URL. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof StateBackendError) throw e;
      throw new StateBackendError(
        `Redis at ${this.location} failed to ${what} (${toError(e).message}); check that Redis is running and reachable, then try again`,
        { cause: e },
      );
    }
  }

  /** Runs a MULTI (or pipeline) and returns its replies; any failed command fails the whole call. */
  private async exec(what: string, multi: ReturnType<Redis['multi']> | ReturnType<Redis['pipeline']>): Promise<unknown[]> {
    const results = (await this.call(what, () => multi.exec())) as MultiResult;
    if (!results) throw new StateBackendError(`Redis at ${this.location} aborted the transaction to ${what}; try again`);
    // A MULTI with a bad command fails as a whole (EXECABORT) and is caught by call(); this catches a
    // command that failed inside an otherwise executed transaction or pipeline.
    const failed = results.find(([error]) => error);
    if (failed) throw new StateBackendError(`Redis at ${this.location} failed to ${what} (${failed[0]!.message})`);
    return results.map(([, result]) => result);
  }

  async get(ns: string, key: string): Promise<StateEntry | null> {
    assertName('namespace', ns);
    assertKey(key);
    const text = await this.call(`read ${ns}/${key}`, () => this.client.hget(this.k.keys(ns), key));
    return text === null ? null : decodeField(key, text);
  }

  async set(ns: string, key: string, value: JsonValue): Promise<StateEntry> {
    assertName('namespace', ns);
    assertKey(key);
    const entry: StateEntry = { key, value: JSON.parse(encodeValue(key, value)) as JsonValue, updatedAt: stateTimestamp(this.now()) };
    await this.exec(`set ${ns}/${key}`, this.client.multi().hset(this.k.keys(ns), key, encodeField(entry)).sadd(this.k.namespaces(), ns));
    return entry;
  }

  async del(ns: string, key: string): Promise<boolean> {
    assertName('namespace', ns);
    assertKey(key);
    return (await this.call(`delete ${ns}/${key}`, () => this.client.hdel(this.k.keys(ns), key))) > 0;
  }

  private async hashEntries(what: string, hashKey: string): Promise<StateEntry[]> {
    const all = await this.call(what, () => this.client.hgetall(hashKey));
    return sortEntries(Object.entries(all).map(([key, text]) => decodeField(key, text)));
  }

  async list(ns: string): Promise<StateEntry[]> {
    assertName('namespace', ns);
    return this.hashEntries(`list ${ns}`, this.k.keys(ns));
  }

  async checkpoint(ns: string, name: string): Promise<CheckpointInfo> {
    assertName('namespace', ns);
    assertName('checkpoint', name);
    const at = stateTimestamp(this.now());
    const cp = this.k.checkpoint(ns, name);
    const results = await this.exec(
      `checkpoint ${ns} as ${name}`,
      this.client
        .multi()
        .del(cp)
        .copy(this.k.keys(ns), cp, 'REPLACE')
        .hset(this.k.checkpoints(ns), name, at)
        .sadd(this.k.namespaces(), ns)
        .hlen(cp),
    );
    return { name, at, keys: Number(results[4]) };
  }

  async restore(ns: string, name: string): Promise<CheckpointInfo> {
    assertName('namespace', ns);
    assertName('checkpoint', name);
    const at = await this.call(`read checkpoint ${name} of ${ns}`, () => this.client.hget(this.k.checkpoints(ns), name));
    if (at === null) throw noCheckpoint(ns, name);
    const keys = this.k.keys(ns);
    const results = await this.exec(
      `restore ${ns} from ${name}`,
      this.client.multi().del(keys).copy(this.k.checkpoint(ns, name), keys, 'REPLACE').hlen(keys),
    );
    return { name, at, keys: Number(results[2]) };
  }

  async checkpoints(ns: string): Promise<CheckpointInfo[]> {
    assertName('namespace', ns);
    const all = await this.call(`list the checkpoints of ${ns}`, () => this.client.hgetall(this.k.checkpoints(ns)));
    const names = Object.keys(all);
    if (!names.length) return [];
    const pipeline = this.client.pipeline();
    for (const name of names) pipeline.hlen(this.k.checkpoint(ns, name));
    const counts = await this.exec(`count the checkpoints of ${ns}`, pipeline);
    return sortCheckpoints(names.map((name, i) => ({ name, at: all[name], keys: Number(counts[i]) })));
  }

  async namespaces(): Promise<string[]> {
    const members = (await this.call('list namespaces', () => this.client.smembers(this.k.namespaces()))).sort();
    if (!members.length) return [];
    const pipeline = this.client.pipeline();
    for (const ns of members) pipeline.exists(this.k.keys(ns), this.k.checkpoints(ns));
    const exists = await this.exec('list namespaces', pipeline);
    return members.filter((_, i) => Number(exists[i]) > 0);
  }

  async exportNamespace(ns: string): Promise<NamespaceDump> {
    assertName('namespace', ns);
    const entries = await this.list(ns);
    const checkpoints = [];
    for (const c of await this.checkpoints(ns)) {
      checkpoints.push({ name: c.name, at: c.at, entries: await this.hashEntries(`read checkpoint ${c.name} of ${ns}`, this.k.checkpoint(ns, c.name)) });
    }
    return { ns, entries, checkpoints };
  }

  async importNamespace(dump: NamespaceDump): Promise<void> {
    const { ns } = dump;
    assertName('namespace', ns);
    for (const c of dump.checkpoints) assertName('checkpoint', c.name);
    const old = await this.call(`list the checkpoints of ${ns}`, () => this.client.hkeys(this.k.checkpoints(ns)));
    const multi = this.client.multi().del(this.k.keys(ns), this.k.checkpoints(ns), ...old.map((name) => this.k.checkpoint(ns, name)));
    const fields = (entries: StateEntry[]) => entries.flatMap((e) => [e.key, encodeField({ ...e, value: JSON.parse(encodeValue(e.key, e.value)) as JsonValue })]);
    if (dump.entries.length) multi.hset(this.k.keys(ns), ...fields(dump.entries));
    for (const c of dump.checkpoints) {
      if (c.entries.length) multi.hset(this.k.checkpoint(ns, c.name), ...fields(c.entries));
      multi.hset(this.k.checkpoints(ns), c.name, c.at);
    }
    multi.sadd(this.k.namespaces(), ns);
    await this.exec(`write namespace ${ns}`, multi);
  }

  async close(): Promise<void> {
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // fall through to a hard disconnect
      }
    }
    if (this.client.status !== 'end') this.client.disconnect();
  }
}
