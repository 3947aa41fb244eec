/**
 * One contract, two token-budget stores: every case runs against the memory store and the
 * Redis store (caller time, a fresh key prefix per test). Plus Redis specifics: two stores
 * on one Redis share budgets, and concurrent reservations never pass a limit together.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it, type TestContext } from 'node:test';
import { needRedis } from '../../testing/services.js';
import { closeSharedRedis, deleteByPrefix, sharedRedis, T0 } from '../rate-limit/test-support.js';
import { createMemoryTokenBudgetStore } from './memory.js';
import { createRedisTokenBudgetStore } from './redis.js';
import type { TokenBudget, TokenBudgetStore } from './types.js';

const MIN = 60_000;
const DAY = 86_400_000;
const TTL = 600_000;
const b = (key: string, limit: number, windowMs = MIN): TokenBudget => ({ key, limit, windowMs });

type Make = (t: TestContext) => Promise<TokenBudgetStore | undefined>;

const prefix = () => `gatehouse-test:tb:${randomBytes(6).toString('hex')}:`;

const makers: Record<string, Make> = {
  memory: async () => createMemoryTokenBudgetStore({ sweepIntervalMs: 0 }),
  redis: async (t) => {
    if (!(await needRedis(t))) return undefined;
    const client = await sharedRedis();
    const p = prefix();
    t.after(() => deleteByPrefix(client, p));
    return createRedisTokenBudgetStore({ client, prefix: p, timeSource: 'caller' });
  },
};

after(() => closeSharedRedis());

for (const [name, make] of Object.entries(makers)) {
  describe(`token-budget store contract: ${name}`, () => {
    const check = (title: string, fn: (s: TokenBudgetStore) => Promise<void>) =>
      it(title, async (t) => {
        const s = await make(t);
        if (s === undefined) return;
        try {
          await fn(s);
        } finally {
          await s.close();
        }
      });

    check('admits while there is room; running reservations count; a refusal reserves nothing', async (s) => {
      const m = b('k', 100);
      let d = await s.reserve([m], 'a', 60, TTL, T0);
      assert.deepEqual(d, { allowed: true, budgets: [{ used: 0, reserved: 60, remaining: 40, resetMs: 0 }] });
      d = await s.reserve([m], 'b', 60, TTL, T0 + 1);
      assert.equal(d.allowed, true, '60 reserved < 100: room, even though 60 more would pass the limit');
      assert.deepEqual(d.budgets[0], { used: 0, reserved: 120, remaining: 0, resetMs: TTL - 1 });
      d = await s.reserve([m], 'c', 1, TTL, T0 + 2);
      assert.equal(d.allowed, false);
      assert.deepEqual(d.budgets[0], { used: 0, reserved: 120, remaining: 0, resetMs: TTL - 2 }, 'running calls alone fill it: room when the earliest reservation expires at the latest');
      assert.deepEqual(await s.peek([m], T0 + 3), [{ used: 0, reserved: 120, remaining: 0, resetMs: TTL - 3 }], 'the refusal reserved nothing');
    });

    check('settle replaces the reservation with the real usage, charged at settle time', async (s) => {
      const m = b('k', 100);
      await s.reserve([m], 'a', 90, TTL, T0);
      await s.settle([m], 'a', 30, TTL, T0 + 5_000);
      assert.deepEqual(await s.peek([m], T0 + 5_000), [{ used: 30, reserved: 0, remaining: 70, resetMs: MIN + 1_000 }]);
      // Real usage may pass the limit (the call was admitted while there was room).
      await s.reserve([m], 'b', 10, TTL, T0 + 6_000);
      await s.settle([m], 'b', 500, TTL, T0 + 6_500);
      const d = await s.reserve([m], 'c', 10, TTL, T0 + 7_000);
      assert.equal(d.allowed, false);
      // 530 charged: room comes when the bucket of the 500 leaves, (6+1) s + W after T0.
      assert.deepEqual(d.budgets[0], { used: 530, reserved: 0, remaining: 0, resetMs: 7_000 + MIN - 7_000 });
    });

    check('a charge counts for at least the window and at most one bucket (W/60) longer', async (s) => {
      const m = b('k', 10);
      await s.settle([m], 'x', 10, TTL, T0 + 400); // bucket [T0, T0+1000)
      assert.equal((await s.reserve([m], 'a', 1, TTL, T0 + 400 + MIN - 1)).allowed, false, 'still inside the window');
      assert.equal((await s.reserve([m], 'a', 1, TTL, T0 + 1_000 + MIN - 1)).allowed, false, 'counts until its bucket end + W');
      assert.equal((await s.reserve([m], 'a', 1, TTL, T0 + 1_000 + MIN)).allowed, true);
    });

    check('several budgets are decided together: all reserve or none', async (s) => {
      const minute = b('m', 100);
      const day = b('d', 150, DAY);
      assert.equal((await s.reserve([minute, day], 'a', 50, TTL, T0)).allowed, true);
      await s.settle([minute, day], 'a', 140, TTL, T0 + 10);
      // The minute is full (140 >= 100): nothing is reserved in the day budget either.
      const d = await s.reserve([minute, day], 'b', 5, TTL, T0 + 20);
      assert.equal(d.allowed, false);
      assert.deepEqual(
        (await s.peek([minute, day], T0 + 20)).map((x) => x.reserved),
        [0, 0],
      );
      // After the minute passes, the day budget still has 10 of room.
      const later = await s.reserve([minute, day], 'c', 5, TTL, T0 + 2 * MIN);
      assert.equal(later.allowed, true);
      assert.deepEqual(later.budgets.map((x) => [x.used, x.reserved, x.remaining]), [[0, 5, 95], [140, 5, 5]]);
    });

    check('a reservation holds budget for its ttl at most; settling it later still charges', async (s) => {
      const m = b('k', 10);
      await s.reserve([m], 'a', 10, 1_000, T0);
      assert.equal((await s.reserve([m], 'b', 1, 1_000, T0 + 999)).allowed, false);
      assert.equal((await s.reserve([m], 'b', 1, 1_000, T0 + 1_000)).allowed, true, 'expired');
      await s.settle([m], 'a', 7, 1_000, T0 + 1_500);
      assert.deepEqual((await s.peek([m], T0 + 1_500))[0], { used: 7, reserved: 1, remaining: 2, resetMs: 2_000 + MIN - 1_500 });
    });

    check('a tracking budget (limit 0) counts usage and never refuses', async (s) => {
      const t = b('t', 0, DAY);
      await s.settle([t], 'x', 1_000_000, TTL, T0);
      const d = await s.reserve([t], 'a', 5, TTL, T0 + 1);
      assert.equal(d.allowed, true);
      assert.equal(d.budgets[0]?.used, 1_000_000);
      assert.equal(d.budgets[0]?.remaining, 0);
    });

    check('settle without usage only drops the reservation; unknown keys read as empty', async (s) => {
      const m = b('k', 10);
      await s.reserve([m], 'a', 4, TTL, T0);
      await s.settle([m], 'a', 0, TTL, T0 + 1);
      assert.deepEqual(await s.peek([m, b('other', 5)], T0 + 2), [
        { used: 0, reserved: 0, remaining: 10, resetMs: 0 },
        { used: 0, reserved: 0, remaining: 5, resetMs: 0 },
      ]);
    });

    check('bad input is refused before anything is written', async (s) => {
      await assert.rejects(async () => s.reserve([b('k', 1), b('k', 2)], 'a', 1, TTL, T0), RangeError);
      await assert.rejects(async () => s.reserve([b('k', 1)], 'a b', 1, TTL, T0), RangeError);
      await assert.rejects(async () => s.settle([b('k', 1)], 'a', -1, TTL, T0), RangeError);
      await assert.rejects(async () => s.reserve([b('k', 1.5)], 'a', 1, TTL, T0), RangeError);
      assert.deepEqual(await s.peek([b('k', 3)], T0), [{ used: 0, reserved: 0, remaining: 3, resetMs: 0 }]);
    });
  });
}

describe('redis token-budget store', () => {
  it('two stores (two gateway instances) on one Redis share each budget', async (t) => {
    if (!(await needRedis(t))) return;
    const client = await sharedRedis();
    const p = prefix();
    t.after(() => deleteByPrefix(client, p));
    const a = createRedisTokenBudgetStore({ client, prefix: p, timeSource: 'caller' });
    const c = createRedisTokenBudgetStore({ client, prefix: p, timeSource: 'caller' });
    const m = b('shared', 100);
    await a.reserve([m], 'x', 30, TTL, T0);
    assert.deepEqual((await c.peek([m], T0))[0], { used: 0, reserved: 30, remaining: 70, resetMs: 0 });
    await c.settle([m], 'x', 40, TTL, T0 + 1);
    assert.equal((await a.peek([m], T0 + 1))[0]?.used, 40);
  });

  it('concurrent reservations from two instances never pass a limit together', async (t) => {
    if (!(await needRedis(t))) return;
    const client = await sharedRedis();
    const p = prefix();
    t.after(() => deleteByPrefix(client, p));
    const stores = [createRedisTokenBudgetStore({ client, prefix: p, timeSource: 'caller' }), createRedisTokenBudgetStore({ client, prefix: p, timeSource: 'caller' })];
    const m = b('race', 100);
    const ds = await Promise.all(Array.from({ length: 20 }, (_, i) => (stores[i % 2] as TokenBudgetStore).reserve([m], `r${i}`, 30, TTL, T0)));
    assert.equal(ds.filter((d) => d.allowed).length, 4, '0, 30, 60, 90 are below 100; the 5th sees 120');
  });

  it('uses the server clock by default', async (t) => {
    if (!(await needRedis(t))) return;
    const client = await sharedRedis();
    const p = prefix();
    t.after(() => deleteByPrefix(client, p));
    const s = createRedisTokenBudgetStore({ client, prefix: p });
    const m = b('clock', 10);
    await s.settle([m], 'x', 10, TTL, 0);
    // A nonsense caller time would put the charge out of any window; the server's keeps it.
    const d = await s.reserve([m], 'y', 1, TTL, T0 * 10);
    assert.equal(d.allowed, false);
    assert.ok((d.budgets[0]?.resetMs ?? 0) > MIN - 10_000 && (d.budgets[0]?.resetMs ?? 0) <= MIN + 1_000);
  });
});
