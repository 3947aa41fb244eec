import assert from 'node:assert/strict';
import { it } from 'node:test';
import { TokenCache } from './cache.js';

const v = (expiresAtMs: number, id = 0) => ({ expiresAtMs, id });

it('returns an entry until it expires, then drops it', () => {
  const c = new TokenCache<ReturnType<typeof v>>(10);
  c.set('a', v(1000), 0);
  assert.equal(c.get('a', 999)?.expiresAtMs, 1000);
  assert.equal(c.get('a', 1000), undefined);
  assert.equal(c.size, 0);
  assert.equal(c.get('missing', 0), undefined);
});

it('never holds more than its bound; a bound of 0 caches nothing', () => {
  const c = new TokenCache<ReturnType<typeof v>>(3);
  for (let i = 0; i < 100; i++) {
    c.set(`k${i}`, v(1e12, i), 0);
    if (i % 3 === 0) c.get(`k${i}`, 0);
    assert.ok(c.size <= 3);
  }
  const z = new TokenCache<ReturnType<typeof v>>(0);
  z.set('a', v(1e12), 0);
  assert.equal(z.get('a', 0), undefined);
});

it('evicts an entry not used since it was cached before one that was hit (second chance)', () => {
  const c = new TokenCache<ReturnType<typeof v>>(3);
  c.set('a', v(1e12), 0);
  c.set('b', v(1e12), 0);
  c.set('c', v(1e12), 0);
  c.get('a', 0); // the oldest, but recently used
  c.set('d', v(1e12), 0);
  assert.notEqual(c.get('a', 0), undefined);
  assert.equal(c.get('b', 0), undefined);
  assert.notEqual(c.get('c', 0), undefined);
  assert.notEqual(c.get('d', 0), undefined);
});

it('evicts an expired entry even if it was used', () => {
  const c = new TokenCache<ReturnType<typeof v>>(2);
  c.set('old', v(10), 0);
  c.set('b', v(1e12), 0);
  c.get('old', 5);
  c.get('b', 5);
  c.set('c', v(1e12), 20);
  assert.equal(c.get('old', 5), undefined);
  assert.notEqual(c.get('b', 20), undefined);
});

it('evicts within a bounded walk when every entry was hit', () => {
  const c = new TokenCache<ReturnType<typeof v>>(1000);
  for (let i = 0; i < 1000; i++) c.set(`k${i}`, v(1e12, i), 0);
  for (let i = 0; i < 1000; i++) c.get(`k${i}`, 0);
  c.set('new', v(1e12), 0);
  assert.equal(c.size, 1000);
  assert.notEqual(c.get('new', 0), undefined);
});
