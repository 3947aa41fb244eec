/**
 * Redis-store specifics: the server clock, several gateway instances on one Redis,
 * atomicity under concurrency, key layout, ownership of the injected client, fail-fast.
 * (Semantics are in contract.test.ts and model.test.ts; outages in redis-outage.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { needRedis, REDIS_URL } from '../../testing/services.js';
import { createRedisRateLimitStore } from './redis.js';
import { closeSharedRedis, deleteByPrefix, sharedRedis, T0, uniquePrefix } from './test-support.js';
import type { RateHit } from './types.js';

const rule = (key: string, limit: number, windowMs: number, enforce = true): RateHit => ({ key, limit, windowMs, enforce });

describe('redis rate-limit store', () => {
  it("timeSource 'redis' ignores the caller's clock and uses the server's", async (t) => {
    if (!(await needRedis(t))) return;
    const client = await sharedRedis();
    const prefix = uniquePrefix('redis-time');
    t.after(() => deleteByPrefix(client, prefix));
    const s = createRedisRateLimitStore({ client, prefix }); // default: 'redis'
    const W = 60_000;
    // A nonsense caller time: if it were used, the second hit would see an empty window.
    assert.deepEqual(await s.hit([rule('k', 3, W)], 0), { allowed: true, rules: [{ allowed: true, remaining: 2, resetMs: W }] });
    const d = await s.hit([rule('k', 3, W)], T0 + 10 * W);
    assert.equal(d.rules[0]!.remaining, 1);
    // resetMs counts down on the server clock (generous bound: a busy machine).
    assert.ok(d.rules[0]!.resetMs <= W && d.rules[0]!.resetMs > W - 10_000, `resetMs ${d.rules[0]!.resetMs}`);
    await s.close();
  });

  it('two gateway instances share the counters; same-millisecond hits from both count', async (t) => {
    if (!(await needRedis(t))) return;
    const client = await sharedRedis();
    const prefix = uniquePrefix('instances');
    t.after(() => deleteByPrefix(client, prefix));
    const a = createRedisRateLimitStore({ client, prefix, timeSource: 'caller' });
    const b = createRedisRateLimitStore({ client, prefix, timeSource: 'caller' });
    assert.equal((await a.hit([rule('k', 2, 1000)], T0)).rules[0]!.remaining, 1);
    assert.equal((await b.hit([rule('k', 2, 1000)], T0)).rules[0]!.remaining, 0);
    assert.equal((await a.hit([rule('k', 2, 1000)], T0)).allowed, false);
    assert.equal(await client.zcard(`${prefix}k`), 2);
  });

  for (const timeSource of ['caller', 'redis'] as const) {
    it(`is atomic under concurrency (${timeSource} time): 200 concurrent decisions, exactly N accepted`, async (t) => {
      if (!(await needRedis(t))) return;
      const client = await sharedRedis();
      const prefix = uniquePrefix('atomic');
      t.after(() => deleteByPrefix(client, prefix));
      const stores = Array.from({ length: 4 }, () => createRedisRateLimitStore({ client, prefix, timeSource }));
      // Two rules per decision: each must end with exactly as many entries as accepted
      // decisions (all-or-nothing), and the tighter one bounds the total.
      const hits = [rule('general', 50, 60_000), rule('login', 17, 60_000)];
      const decisions = await Promise.all(Array.from({ length: 200 }, (_, i) => stores[i % 4]!.hit(hits, T0)));
      const accepted = decisions.filter((d) => d.allowed).length;
      assert.equal(accepted, 17);
      assert.equal(await client.zcard(`${prefix}general`), 17);
      assert.equal(await client.zcard(`${prefix}login`), 17);
    });
  }

  it('keys carry the prefix (default gatehouse:rl:) and a TTL', async (t) => {
    if (!(await needRedis(t))) return;
    const client = await sharedRedis();
    const key = `${uniquePrefix('default-prefix')}k`;
    t.after(async () => {
      await client.del(`gatehouse:rl:${key}`);
    });
    const s = createRedisRateLimitStore({ client });
    await s.hit([rule(key, 2, 5000)], Date.now());
    assert.equal(await client.exists(`gatehouse:rl:${key}`), 1);
    const ttl = await client.pttl(`gatehouse:rl:${key}`);
    assert.ok(ttl > 0 && ttl <= 5000, `pttl ${ttl}`);
  });

  it('close() does not quit the injected client', async (t) => {
    if (!(await needRedis(t))) return;
    const client = await sharedRedis();
    const s = createRedisRateLimitStore({ client, prefix: uniquePrefix('close') });
    assert.equal(s.ready(), true);
    await s.close();
    assert.equal(s.ready(), false);
    await assert.rejects(async () => s.hit([rule('k', 1, 1000)], T0));
    assert.equal(client.status, 'ready');
    assert.equal(await client.ping(), 'PONG');
  });

  it('fails fast, without queueing, when the client is not connected', async () => {
    // Never connected (lazyConnect) and WITH an offline queue: the store must still not
    // wait for a connection that may never come.
    const client = new Redis(REDIS_URL, { lazyConnect: true });
    try {
      const s = createRedisRateLimitStore({ client, timeSource: 'caller' });
      assert.equal(s.ready(), false);
      const started = Date.now();
      await assert.rejects(async () => s.hit([rule('k', 1, 1000)], T0), /not ready/);
      assert.ok(Date.now() - started < 1000);
    } finally {
      client.disconnect();
    }
  });
});

after(() => closeSharedRedis());
