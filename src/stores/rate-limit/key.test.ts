import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { rateKey } from './key.js';

describe('rateKey', () => {
  it('is stable and readable for plain ids', () => {
    assert.equal(rateKey('site1', 'login', '203.0.113.7'), 'site1:login:203.0.113.7');
    assert.equal(rateKey('site1', 'login', '203.0.113.7'), rateKey('site1', 'login', '203.0.113.7'));
  });

  it('escapes the separator, the escape character and braces in site and rule ids', () => {
    assert.equal(rateKey('s:1', 'r%', 'c'), 's%3A1:r%25:c');
    assert.equal(rateKey('{s}', 'r', 'c'), '%7Bs%7D:r:c');
    assert.notEqual(rateKey('a:b', 'c', 'd'), rateKey('a', 'b:c', 'd'));
    assert.notEqual(rateKey('a', 'b:c', 'd'), rateKey('a', 'b', 'c:d'));
    assert.notEqual(rateKey('a%3A', 'b', 'c'), rateKey('a:', 'b', 'c'));
  });

  it('keeps the client key verbatim (IPv6 stays readable)', () => {
    assert.equal(rateKey('s', 'r', '2001:db8::1'), 's:r:2001:db8::1');
    assert.equal(rateKey('s', 'r', '%7B{}'), 's:r:%7B{}');
  });

  it('rateKey(site, rule, client) === rateKey(site, rule, "") + client (property)', () => {
    const part = fc.string({ unit: fc.constantFrom('a', ':', '%', '3', 'A', '{', '}'), maxLength: 6 });
    fc.assert(
      fc.property(part, part, part, (s, r, c) => {
        assert.equal(rateKey(s, r, c), rateKey(s, r, '') + c);
      }),
    );
  });

  it('is injective (property)', () => {
    const part = fc.string({ unit: fc.constantFrom('a', ':', '%', '3', 'A', '{', '}', '7', 'B'), maxLength: 6 });
    fc.assert(
      fc.property(fc.tuple(part, part, part), fc.tuple(part, part, part), (x, y) => {
        if (x[0] === y[0] && x[1] === y[1] && x[2] === y[2]) return;
        assert.notEqual(rateKey(...x), rateKey(...y));
      }),
      { numRuns: 2000 },
    );
  });
});
