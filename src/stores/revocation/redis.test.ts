import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, it } from 'node:test';
import { closeSharedRedis, deleteByPrefix, sharedRedis } from '../rate-limit/test-support.js';
import { createRedisClient } from '../rate-limit/redis-client.js';
import { needRedis, REDIS_URL } from '../../testing/services.js';
import { sha256Hex } from '../../stages/token/verifier.js';
import { createRedisRevocationStore, revocationKeys } from './redis.js';

after(() => closeSharedRedis());

it('a revocation whose push was lost is found by the sequence-numbered log (poll), not missed', async (t) => {
  if (!(await needRedis(t))) return;
  const prefix = `gatehouse-test:rev:${randomBytes(6).toString('hex')}:`;
  const client = createRedisClient({ url: REDIS_URL, commandTimeoutMs: 10_000 });
  const store = createRedisRevocationStore({ client, subscriber: { url: REDIS_URL }, prefix, maxStalenessMs: 5000, pollIntervalMs: 100 });
  const redis = await sharedRedis();
  try {
    await store.start();
    const k = revocationKeys(prefix);
    // What a writer does, minus the PUBLISH (as if the message was lost).
    const now = Date.now();
    const entry = { kind: 'jti', key: sha256Hex('lost-push'), before: 0, expiresAt: now + 60_000, createdAt: now };
    const seq = await redis.incr(k.seq);
    await redis.zadd(k.log, seq, `${seq}|${entry.expiresAt}|${JSON.stringify(entry)}`);
    const end = Date.now() + 5000;
    while (!store.revoked(entry.key, 's', 1, Date.now())) {
      if (Date.now() > end) assert.fail('the lost revocation was never applied');
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await store.close();
    client.disconnect();
    await deleteByPrefix(redis, prefix);
  }
});
