/**
 * Shared helpers for the rate-limit tests (not part of the public API).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { REDIS_URL } from '../../testing/services.js';
import { createRedisClient } from './redis-client.js';

/** A fixed, realistic epoch so that timestamps look like Date.now() values. */
export const T0 = 1_700_000_000_000;

let shared: Promise<Redis> | undefined;

/** Wait until an ioredis client is ready (or fail after `timeoutMs`). */
export function waitReady(client: Redis, timeoutMs = 10_000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`redis not ready after ${timeoutMs} ms (status ${client.status})`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}

/**
 * One client to the test Redis (REDIS_URL, DB 15) per test file, created on first use.
 * Call only after `needRedis(t)` returned true. A generous command timeout: the tests
 * share two cores with other test files.
 */
export function sharedRedis(): Promise<Redis> {
  shared ??= (async () => {
    const client = createRedisClient({ url: REDIS_URL, commandTimeoutMs: 10_000 });
    await waitReady(client);
    return client;
  })();
  return shared;
}

export async function closeSharedRedis(): Promise<void> {
  const p = shared;
  shared = undefined;
  if (p === undefined) return;
  const client = await p.catch(() => undefined);
  client?.disconnect();
}

/** A prefix no other run (or concurrent test file) uses. */
export function uniquePrefix(tag: string): string {
  return `gatehouse-test:rl:${tag}:${randomBytes(6).toString('hex')}:`;
}

/** Delete every key under `prefix` (keys also expire by themselves; this is hygiene). */
export async function deleteByPrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.del(...keys);
  } while (cursor !== '0');
}
