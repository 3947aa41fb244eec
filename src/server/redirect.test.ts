import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { hostOf, pathAndQuery } from './redirect.js';

it('hostOf: the host of a Host header without its port, or null for anything that is not a plain name or address', () => {
  assert.equal(hostOf('App.Test:8080'), 'app.test');
  assert.equal(hostOf('app.test.'), 'app.test');
  assert.equal(hostOf('[::1]:8080'), '[::1]');
  assert.equal(hostOf('127.0.0.1'), '127.0.0.1');
  assert.equal(hostOf(undefined), null);
  assert.equal(hostOf(''), null);
  assert.equal(hostOf('evil.test/x'), null);
  assert.equal(hostOf('a b'), null);
  assert.equal(hostOf('[::1'), null);
});

it('hostOf (property): whatever the header, the result is null or safe to put in a Location', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (h) => {
      const r = hostOf(h);
      return r === null || /^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/.test(r);
    }),
    { numRuns: 2000 },
  );
});

it('pathAndQuery keeps path and query; never yields a scheme-relative or absolute target', () => {
  assert.equal(pathAndQuery('/a/b?x=1&y=%20'), '/a/b?x=1&y=%20');
  assert.equal(pathAndQuery('http://other.test/p?q=1'), '/p?q=1');
  assert.equal(pathAndQuery('*'), '/');
  assert.equal(pathAndQuery(undefined), '/');
  assert.equal(pathAndQuery('//evil.test/x'), '/evil.test/x');
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (u) => {
      const p = pathAndQuery(u);
      return p.startsWith('/') && !p.startsWith('//');
    }),
    { numRuns: 2000 },
  );
});
