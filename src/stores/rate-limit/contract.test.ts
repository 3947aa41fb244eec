/**
 * One contract, two stores: every case below runs against the memory store and against
 * the Redis store (caller time for determinism, a fresh random key prefix per test).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { needRedis } from '../../testing/services.js';
import { rateKey } from './key.js';
import { createMemoryRateLimitStore } from './memory.js';
import { createRedisRateLimitStore } from './redis.js';
import { closeSharedRedis, deleteByPrefix, sharedRedis, T0, uniquePrefix } from './test-support.js';
import type { RateDecision, RateHit, RateLimitStore } from './types.js';

type MakeStore = (t: TestContext) => Promise<RateLimitStore | undefined>;

const rule = (key: string, limit: number, windowMs: number, enforce = true): RateHit => ({ key, limit, windowMs, enforce });

function contract(name: string, makeStore: MakeStore): void {
  describe(`rate-limit store contract: ${name}`, () => {
    const check = (title: string, fn: (s: RateLimitStore) => Promise<void>) =>
      it(title, async (t) => {
        const store = await makeStore(t);
        if (store === undefined) return; // skipped (service unavailable outside CI)
        try {
          await fn(store);
        } finally {
          await store.close();
        }
      });

    const one = async (s: RateLimitStore, h: RateHit, now: number) => {
      const d = await s.hit([h], now);
      assert.equal(d.rules.length, 1);
      const o = d.rules[0]!;
      // With a single rule the decision is that rule's outcome (shadow: always allowed).
      assert.equal(d.allowed, h.enforce ? o.allowed : true);
      return o;
    };

    check('is ready until closed', async (s) => {
      assert.equal(s.ready(), true);
      await s.close();
      assert.equal(s.ready(), false);
    });

    check('accepts N hits, then refuses', async (s) => {
      const r = rule('n-then-refuse', 3, 1000);
      assert.deepEqual(await one(s, r, T0), { allowed: true, remaining: 2, resetMs: 1000 });
      assert.deepEqual(await one(s, r, T0 + 1), { allowed: true, remaining: 1, resetMs: 999 });
      assert.deepEqual(await one(s, r, T0 + 2), { allowed: true, remaining: 0, resetMs: 998 });
      assert.deepEqual(await one(s, r, T0 + 3), { allowed: false, remaining: 0, resetMs: 997 });
      assert.deepEqual(await one(s, r, T0 + 500), { allowed: false, remaining: 0, resetMs: 500 });
    });

    check('refused hits consume nothing: one more is accepted exactly when the oldest leaves', async (s) => {
      const W = 1000;
      const r = rule('refused-free', 2, W);
      assert.equal((await one(s, r, T0)).allowed, true);
      assert.equal((await one(s, r, T0 + 500)).allowed, true);
      // Hammering while full records nothing...
      for (let t = T0 + 501; t < T0 + W; t += 37) assert.equal((await one(s, r, t)).allowed, false);
      // ...so the hit at T0 is still the oldest: refused at T0+W-1, accepted at T0+W.
      assert.deepEqual(await one(s, r, T0 + W - 1), { allowed: false, remaining: 0, resetMs: 1 });
      assert.deepEqual(await one(s, r, T0 + W), { allowed: true, remaining: 0, resetMs: 500 });
      // Now T0+500 is the oldest: the same again.
      assert.deepEqual(await one(s, r, T0 + 500 + W - 1), { allowed: false, remaining: 0, resetMs: 1 });
      assert.deepEqual(await one(s, r, T0 + 500 + W), { allowed: true, remaining: 0, resetMs: 500 });
    });

    check('the window is half-open: (t-W, t]', async (s) => {
      const r = rule('half-open', 1, 100);
      assert.deepEqual(await one(s, r, T0), { allowed: true, remaining: 0, resetMs: 100 });
      assert.deepEqual(await one(s, r, T0 + 99), { allowed: false, remaining: 0, resetMs: 1 });
      assert.deepEqual(await one(s, r, T0 + 100), { allowed: true, remaining: 0, resetMs: 100 });
      // After a long pause everything has left the window.
      assert.deepEqual(await one(s, r, T0 + 100_000), { allowed: true, remaining: 0, resetMs: 100 });
    });

    check('remaining and resetMs follow the definition', async (s) => {
      const W = 60_000;
      const r = rule('remaining-reset', 5, W);
      // Only this hit in the window: resetMs = W.
      assert.deepEqual(await one(s, r, T0), { allowed: true, remaining: 4, resetMs: W });
      // Otherwise: time until the oldest hit in the window leaves it.
      assert.deepEqual(await one(s, r, T0 + 10_000), { allowed: true, remaining: 3, resetMs: W - 10_000 });
      assert.deepEqual(await one(s, r, T0 + 30_000), { allowed: true, remaining: 2, resetMs: W - 30_000 });
      // T0 has left: T0+10_000 is the oldest.
      assert.deepEqual(await one(s, r, T0 + W), { allowed: true, remaining: 2, resetMs: 10_000 });
      // Empty window after the decision (nothing recorded because another enforced rule
      // refused): resetMs 0, remaining = limit.
      const full = rule('remaining-reset-full', 1, W);
      await one(s, full, T0);
      const d = await s.hit([full, rule('remaining-reset-empty', 7, W)], T0 + 1);
      assert.deepEqual(d, {
        allowed: false,
        rules: [
          { allowed: false, remaining: 0, resetMs: W - 1 },
          { allowed: true, remaining: 7, resetMs: 0 },
        ],
      });
    });

    check('an empty decision is allowed and touches nothing', async (s) => {
      assert.deepEqual(await s.hit([], T0), { allowed: true, rules: [] });
    });

    check('two rules: a login hit consumes both; a refusal by one records in none', async (s) => {
      const W = 60_000;
      const general = rule('two:general', 100, W);
      const login = rule('two:login', 10, W);
      for (let i = 0; i < 10; i++) {
        const d = await s.hit([general, login], T0 + i);
        assert.deepEqual(d, {
          allowed: true,
          rules: [
            { allowed: true, remaining: 99 - i, resetMs: W - i },
            { allowed: true, remaining: 9 - i, resetMs: W - i },
          ],
        });
      }
      // The 11th login is refused by the login rule; the general rule had room but records
      // nothing (all-or-nothing).
      const refused = await s.hit([general, login], T0 + 10);
      assert.deepEqual(refused, {
        allowed: false,
        rules: [
          { allowed: true, remaining: 90, resetMs: W - 10 },
          { allowed: false, remaining: 0, resetMs: W - 10 },
        ],
      });
      // Proof that it recorded nothing: a plain request sees 90 used + itself.
      assert.deepEqual(await one(s, general, T0 + 11), { allowed: true, remaining: 89, resetMs: W - 11 });

      // Conversely, a refusal by the general rule records nothing in the login rule.
      const g2 = rule('two:general2', 3, W);
      const l2 = rule('two:login2', 10, W);
      for (let i = 0; i < 3; i++) assert.equal((await one(s, g2, T0 + i)).allowed, true);
      const d2 = await s.hit([g2, l2], T0 + 5);
      assert.deepEqual(d2, {
        allowed: false,
        rules: [
          { allowed: false, remaining: 0, resetMs: W - 5 },
          { allowed: true, remaining: 10, resetMs: 0 },
        ],
      });
      // Once the general window has room again, the login rule starts from zero.
      const d3 = await s.hit([g2, l2], T0 + W);
      assert.deepEqual(d3, {
        allowed: true,
        rules: [
          { allowed: true, remaining: 0, resetMs: 1 },
          { allowed: true, remaining: 9, resetMs: W },
        ],
      });
    });

    check('outcomes come back in input order', async (s) => {
      const d = await s.hit([rule('order:a', 3, 1000), rule('order:b', 5, 2000), rule('order:c', 1, 10)], T0);
      assert.deepEqual(d.rules, [
        { allowed: true, remaining: 2, resetMs: 1000 },
        { allowed: true, remaining: 4, resetMs: 2000 },
        { allowed: true, remaining: 0, resetMs: 10 },
      ]);
    });

    check('a shadow rule never refuses, reports would-refuse, and records only with room', async (s) => {
      const W = 1000;
      const shadow = rule('shadow:s', 2, W, false);
      const enforced = rule('shadow:e', 100, W);
      assert.equal((await s.hit([enforced, shadow], T0)).allowed, true);
      assert.equal((await s.hit([enforced, shadow], T0 + 10)).allowed, true);
      // Shadow is full: reported as would-refuse, the decision is still allowed and the
      // enforced rule records.
      assert.deepEqual(await s.hit([enforced, shadow], T0 + 20), {
        allowed: true,
        rules: [
          { allowed: true, remaining: 97, resetMs: W - 20 },
          { allowed: false, remaining: 0, resetMs: W - 20 },
        ],
      });
      // Only shadow rules: never refused.
      assert.deepEqual(await s.hit([shadow], T0 + 30), { allowed: true, rules: [{ allowed: false, remaining: 0, resetMs: W - 30 }] });
      // The would-refused hits at T0+20 and T0+30 were not recorded in the shadow rule: when
      // T0 leaves, only T0+10 is left, so there is room again.
      assert.deepEqual(await s.hit([shadow], T0 + W), { allowed: true, rules: [{ allowed: true, remaining: 0, resetMs: 10 }] });

      // A shadow rule with room records nothing when an enforced rule refuses.
      const shadow2 = rule('shadow:s2', 5, W, false);
      const tight = rule('shadow:tight', 1, W);
      await one(s, tight, T0);
      assert.deepEqual(await s.hit([tight, shadow2], T0 + 1), {
        allowed: false,
        rules: [
          { allowed: false, remaining: 0, resetMs: W - 1 },
          { allowed: true, remaining: 5, resetMs: 0 },
        ],
      });
    });

    check('hits in the same millisecond are counted separately', async (s) => {
      const r = rule('same-ms', 3, 1000);
      assert.deepEqual(await one(s, r, T0), { allowed: true, remaining: 2, resetMs: 1000 });
      assert.deepEqual(await one(s, r, T0), { allowed: true, remaining: 1, resetMs: 1000 });
      assert.deepEqual(await one(s, r, T0), { allowed: true, remaining: 0, resetMs: 1000 });
      assert.deepEqual(await one(s, r, T0), { allowed: false, remaining: 0, resetMs: 1000 });
      // All three leave together.
      assert.deepEqual(await one(s, r, T0 + 999), { allowed: false, remaining: 0, resetMs: 1 });
      assert.deepEqual(await one(s, r, T0 + 1000), { allowed: true, remaining: 2, resetMs: 1000 });
      // Same millisecond across two rules in one decision, too.
      const d = await s.hit([rule('same-ms:x', 2, 50), rule('same-ms:y', 2, 50)], T0);
      assert.equal(d.allowed, true);
      const d2 = await s.hit([rule('same-ms:x', 2, 50), rule('same-ms:y', 2, 50)], T0);
      assert.deepEqual(d2.rules.map((o) => o.remaining), [0, 0]);
    });

    check('keys are isolated', async (s) => {
      const a = rule(rateKey('site', 'rule', 'a:b'), 1, 1000);
      const b = rule(rateKey('site', 'rule:a', 'b'), 1, 1000); // 'site:rule%3Aa:b' vs 'site:rule:a:b'
      const c = rule(rateKey('site2', 'rule', 'a:b'), 1, 1000);
      assert.notEqual(a.key, b.key);
      assert.equal((await one(s, a, T0)).allowed, true);
      assert.equal((await one(s, a, T0 + 1)).allowed, false);
      assert.deepEqual(await one(s, b, T0 + 1), { allowed: true, remaining: 0, resetMs: 1000 });
      assert.deepEqual(await one(s, c, T0 + 1), { allowed: true, remaining: 0, resetMs: 1000 });
      assert.equal((await one(s, b, T0 + 2)).allowed, false);
    });

    check('a limit change on the same key keeps the counters', async (s) => {
      const W = 1000;
      const key = 'reload';
      for (let i = 0; i < 3; i++) assert.equal((await one(s, rule(key, 3, W), T0 + i)).allowed, true);
      assert.equal((await one(s, rule(key, 3, W), T0 + 3)).allowed, false);
      // Raised to 5: the three accepted hits still count.
      assert.deepEqual(await one(s, rule(key, 5, W), T0 + 4), { allowed: true, remaining: 1, resetMs: W - 4 });
      // Lowered to 2: full (4 in the window: T0, T0+1, T0+2, T0+4). The next hit can be
      // accepted when the 2nd newest (T0+2) leaves, so resetMs counts to that entry.
      assert.deepEqual(await one(s, rule(key, 2, W), T0 + 5), { allowed: false, remaining: 0, resetMs: W - 3 });
      // Lowering a limit keeps only the newest `limit` entries (T0+2, T0+4): only they can
      // influence a decision under the lower limit. Both stores do this; it can only make a
      // later raise more lenient, never stricter. Raised to 5 again: 2 + this hit.
      assert.deepEqual(await one(s, rule(key, 5, W), T0 + 6), { allowed: true, remaining: 2, resetMs: W - 4 });
      // Lowered to 2 again: newest two are T0+4, T0+6; accepted exactly when T0+4 leaves.
      assert.deepEqual(await one(s, rule(key, 2, W), T0 + 7), { allowed: false, remaining: 0, resetMs: W - 3 });
      assert.deepEqual(await one(s, rule(key, 2, W), T0 + W + 3), { allowed: false, remaining: 0, resetMs: 1 });
      assert.deepEqual(await one(s, rule(key, 2, W), T0 + W + 4), { allowed: true, remaining: 0, resetMs: 2 });
      // A window change keeps the counters too.
      assert.deepEqual(await one(s, rule(key, 3, 10 * W), T0 + W + 5), { allowed: true, remaining: 0, resetMs: 10 * W - W + 1 });
    });

    check('a caller clock stepping backwards: entries stay ordered by time and none is lost', async (s) => {
      // Several callers with slightly different clocks (caller time source): a hit stamped
      // "in the future" relative to this caller still counts (the strict reading), and the
      // earlier entry is the oldest one.
      const r = rule('backwards', 3, 100);
      assert.deepEqual(await one(s, r, T0 + 10), { allowed: true, remaining: 2, resetMs: 100 });
      assert.deepEqual(await one(s, r, T0 + 5), { allowed: true, remaining: 1, resetMs: 100 });
      assert.deepEqual(await one(s, r, T0 + 105), { allowed: true, remaining: 1, resetMs: 5 });
      assert.deepEqual(await one(s, r, T0 + 106), { allowed: true, remaining: 0, resetMs: 4 });
      assert.deepEqual(await one(s, r, T0 + 109), { allowed: false, remaining: 0, resetMs: 1 });
      assert.deepEqual(await one(s, r, T0 + 110), { allowed: true, remaining: 0, resetMs: 95 });
    });

    check('rejects duplicate keys in one decision and invalid rules', async (s) => {
      await assert.rejects(async () => s.hit([rule('dup', 2, 10), rule('dup', 3, 10)], T0), RangeError);
      await assert.rejects(async () => s.hit([rule('bad', 0, 10)], T0), RangeError);
      await assert.rejects(async () => s.hit([rule('bad', 1, 1.5)], T0), RangeError);
      // Nothing was recorded by the rejected decisions.
      const d: RateDecision = await s.hit([rule('dup', 1, 10)], T0);
      assert.equal(d.allowed, true);
    });
  });
}

contract('memory', () => Promise.resolve(createMemoryRateLimitStore()));

contract('redis', async (t) => {
  if (!(await needRedis(t))) return undefined;
  const client = await sharedRedis();
  const prefix = uniquePrefix('contract');
  t.after(() => deleteByPrefix(client, prefix));
  return createRedisRateLimitStore({ client, prefix, timeSource: 'caller' });
});

after(() => closeSharedRedis());
