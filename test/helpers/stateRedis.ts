/**
 * Real Redis for the state tests (127.0.0.1:6379, as CI runs it): a key prefix unique to each call, and
 * a clean-up that deletes every key under it.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.CAIRN_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/** A prefix no other test run shares. */
export function uniqueRedisPrefix(label = 'state'): string {
  return `cairn-test:${label}:${process.pid}:${randomUUID().slice(0, 8)}:`;
}

/** Opens a plain client for inspecting what the backend wrote; the caller quits it. */
export function inspectRedis(): Redis {
  return new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
}

/** Every key under `prefix`, sorted. */
export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return [...new Set(keys)].sort();
}

/** Deletes every key under each prefix. */
export async function deleteRedisPrefixes(prefixes: string[]): Promise<void> {
  if (!prefixes.length) return;
  const client = inspectRedis();
  try {
    for (const prefix of prefixes) {
      const keys = await keysUnder(client, prefix);
      if (keys.length) await client.del(...keys);
    }
  } finally {
    await client.quit();
  }
}
