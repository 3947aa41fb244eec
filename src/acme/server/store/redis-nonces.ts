/**
 * ACME nonces in Redis, shared by every instance: a nonce issued by one instance is
 * accepted by any other, once. SET with an expiry on issue; DEL on use — DEL answers 1
 * for exactly one caller, so a replay through another instance fails too.
 */
import type { Redis } from 'ioredis';
import type { NonceStore } from './types.js';

export function createRedisNonceStore(client: Redis, prefix: string, opts: { disconnect?: boolean } = {}): NonceStore {
  return {
    kind: 'redis',
    async add(nonce, expiresAt) {
      await client.set(`${prefix}${nonce}`, '1', 'PX', Math.max(1, expiresAt - Date.now()));
    },
    async consume(nonce) {
      // Redis expires the key itself; `now` is not needed for the check.
      return (await client.del(`${prefix}${nonce}`)) === 1;
    },
    async close() {
      if (opts.disconnect) client.disconnect();
    },
  };
}
