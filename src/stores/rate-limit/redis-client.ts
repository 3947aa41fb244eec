/**
 * An ioredis client configured for the request hot path: when Redis is down a decision
 * must fail FAST (the caller then applies the rule's failure mode, open or closed), never
 * wait for a reconnect; and the client must come back by itself when Redis does.
 *
 *  - enableOfflineQueue: false: a command issued while disconnected is rejected at once
 *    instead of being queued until the connection returns (which could be never).
 *  - maxRetriesPerRequest: 0: commands in flight when the connection drops are rejected
 *    on the first close instead of being retried across reconnects.
 *  - autoResendUnfulfilledCommands: false: a hit whose promise already failed (and whose
 *    request was already answered using the failure mode) must not be replayed later.
 *  - commandTimeout: bounds a command on a connection that is open but unresponsive
 *    (server paused, network black hole), where no close event would ever arrive.
 *  - retryStrategy: capped exponential backoff, never giving up: the store recovers
 *    without anyone creating a new client.
 *
 * The password is passed to ioredis as an option and never logged here; errors from
 * ioredis (ECONNREFUSED host:port, timeouts) do not contain it.
 */
import { createRequire } from 'node:module';
import type { ConnectionOptions } from 'node:tls';
import type * as IORedis from 'ioredis';
import type { Redis } from 'ioredis';

let ioredis: typeof IORedis | null = null;

/**
 * ioredis, loaded when the first Redis client is made (a config with a Redis store: at
 * start-up or reload, never per request), not with this module: ~10 MB of memory that a
 * gateway on the embedded stores does not need (docs/operations.md#memory). `require`, not
 * `import()`: clients are made synchronously, and ioredis is CommonJS only, so this is
 * the module instance an import would give.
 */
export function redisModule(): typeof IORedis {
  if (ioredis === null) ioredis = createRequire(import.meta.url)('ioredis') as typeof IORedis;
  return ioredis;
}

export interface RedisClientOptions {
  /** redis://[user[:password]@]host:port[/db] (or rediss:// for TLS). */
  url: string;
  /** Overrides a password in the URL; keep secrets out of URLs that may be logged. */
  password?: string;
  /** Per-command timeout (default 500 ms). */
  commandTimeoutMs?: number;
  /** TCP/TLS connect timeout (default 2000 ms). */
  connectTimeoutMs?: number;
  /** TLS for a rediss:// URL, verified (src/stores/store-tls.ts). */
  tls?: ConnectionOptions;
}

/** Reconnect delays: 50, 100, 200, ... ms, capped at 2 s, forever. */
export function reconnectDelay(attempt: number): number {
  return Math.min(2000, 50 * 2 ** Math.min(Math.max(attempt - 1, 0), 6));
}

export function createRedisClient(opts: RedisClientOptions): Redis {
  const client = new (redisModule().Redis)(opts.url, {
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: opts.commandTimeoutMs ?? 500,
    connectTimeout: opts.connectTimeoutMs ?? 2000,
    retryStrategy: reconnectDelay,
    lazyConnect: false,
  });
  // Without an 'error' listener ioredis prints "[ioredis] Unhandled error event" on every
  // failed reconnect attempt. Outages are visible through ready() (/readyz) and rejected
  // decisions; owners that want to log connection errors add their own listener.
  client.on('error', () => {});
  return client;
}
