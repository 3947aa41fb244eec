/**
 * Memory-store specifics: synchronous decisions, the sweep, maxKeys eviction, close.
 * (Semantics are in contract.test.ts and model.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemoryRateLimitStore } from './memory.js';
import { T0 } from './test-support.js';
import type { RateHit } from './types.js';

const rule = (key: string, limit: number, windowMs: number, enforce = true): RateHit => ({ key, limit, windowMs, enforce });

async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('memory rate-limit store', () => {
  it('decides synchronously: hit returns a plain object, not a promise', async () => {
    const s = createMemoryRateLimitStore();
    const d = s.hit([rule('k', 1, 1000)], T0);
    assert.equal(typeof d, 'object');
    assert.equal('then' in d, false);
    assert.deepEqual(d, { allowed: true, rules: [{ allowed: true, remaining: 0, resetMs: 1000 }] });
    await s.close();
  });

  it('grows the ring buffer up to the limit (large limit, same millisecond)', async () => {
    const s = createMemoryRateLimitStore();
    for (let i = 0; i < 1000; i++) assert.equal(s.hit([rule('big', 1000, 60_000)], T0 + (i >> 4)).allowed, true);
    assert.deepEqual(s.hit([rule('big', 1000, 60_000)], T0 + 100), { allowed: false, rules: [{ allowed: false, remaining: 0, resetMs: 59_900 }] });
    // The first 16 hits (at T0) leave together.
    assert.deepEqual(s.hit([rule('big', 1000, 60_000)], T0 + 60_000), { allowed: true, rules: [{ allowed: true, remaining: 15, resetMs: 1 }] });
    await s.close();
  });

  it('sweep() drops exactly the keys whose newest entry has left their window', async () => {
    const s = createMemoryRateLimitStore({ sweepIntervalMs: 0 });
    s.hit([rule('short', 5, 100)], T0);
    s.hit([rule('long', 5, 1000)], T0);
    s.hit([rule('edge', 5, 100)], T0 + 1);
    s.hit([rule('now', 5, 100)], T0 + 101); // the store's clock is the largest nowMs seen
    assert.equal(s.size, 4);
    s.sweep();
    // short: T0 <= T0+101-100 -> gone; edge: T0+1 <= T0+1 -> gone; long and now stay.
    assert.equal(s.size, 2);
    assert.deepEqual(s.hit([rule('long', 5, 1000)], T0 + 102).rules[0], { allowed: true, remaining: 3, resetMs: 898 });
    await s.close();
  });

  it('the periodic sweep runs by itself, in slices, and is stopped by close()', async () => {
    const s = createMemoryRateLimitStore({ sweepIntervalMs: 20 });
    for (let i = 0; i < 25_000; i++) s.hit([rule(`c${i}`, 1, 10)], T0);
    s.hit([rule('late', 1, 10)], T0 + 10);
    assert.equal(s.size, 25_001);
    await until(() => s.size === 1, 10_000);
    await s.close();
    assert.equal(s.size, 0);
  });

  it('maxKeys: evicts the least recently recorded key (eviction is only ever lenient)', async () => {
    const s = createMemoryRateLimitStore({ maxKeys: 3, sweepIntervalMs: 0 });
    const W = 60_000;
    assert.equal(s.hit([rule('a', 2, W)], T0).allowed, true);
    assert.equal(s.hit([rule('b', 2, W)], T0 + 1).allowed, true);
    assert.equal(s.hit([rule('c', 2, W)], T0 + 2).allowed, true);
    assert.equal(s.hit([rule('a', 2, W)], T0 + 3).allowed, true); // a is now full and most recent
    assert.equal(s.hit([rule('d', 2, W)], T0 + 4).allowed, true); // evicts b
    assert.equal(s.size, 3);
    assert.equal(s.hit([rule('a', 2, W)], T0 + 5).allowed, false); // a kept its counter
    // b was evicted: it starts from zero again (more lenient, never stricter).
    assert.deepEqual(s.hit([rule('b', 2, W)], T0 + 6).rules[0], { allowed: true, remaining: 1, resetMs: W });
    // That evicted c (recorded at T0+2; a's refusal at T0+5 did not refresh a).
    assert.deepEqual(s.hit([rule('c', 2, W)], T0 + 7).rules[0], { allowed: true, remaining: 1, resetMs: W });
    assert.equal(s.size, 3);
    await s.close();
  });

  it('maxKeys holds even when one decision creates several keys', async () => {
    const s = createMemoryRateLimitStore({ maxKeys: 2, sweepIntervalMs: 0 });
    for (let i = 0; i < 10; i++) {
      const d = s.hit([rule(`x${i}`, 1, 1000), rule(`y${i}`, 1, 1000)], T0 + i);
      assert.equal(d.allowed, true);
      assert.ok(s.size <= 2);
    }
    await s.close();
  });

  it('close(): not ready, refuses to decide, forgets everything', async () => {
    const s = createMemoryRateLimitStore();
    s.hit([rule('k', 1, 1000)], T0);
    await s.close();
    assert.equal(s.ready(), false);
    assert.equal(s.size, 0);
    assert.throws(() => s.hit([rule('k', 1, 1000)], T0));
  });

  it('rejects invalid options', () => {
    assert.throws(() => createMemoryRateLimitStore({ maxKeys: 0 }), RangeError);
    assert.throws(() => createMemoryRateLimitStore({ sweepIntervalMs: -1 }), RangeError);
  });
});
