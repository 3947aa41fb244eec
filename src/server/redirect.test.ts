import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { hostOf, locationFor, pathAndQuery } from './redirect.js';

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

it('pathAndQuery keeps path and query exactly as received, a leading // included', () => {
  assert.equal(pathAndQuery('/a/b?x=1&y=%20'), '/a/b?x=1&y=%20');
  assert.equal(pathAndQuery('http://other.test/p?q=1'), '/p?q=1');
  assert.equal(pathAndQuery('HTTP://other.test//p/../q?x'), '//p/../q?x');
  assert.equal(pathAndQuery('http://other.test?q=1'), '/?q=1');
  assert.equal(pathAndQuery('*'), '/');
  assert.equal(pathAndQuery(undefined), '/');
  assert.equal(pathAndQuery('//evil.test/x'), '//evil.test/x');
  assert.equal(pathAndQuery('/a//b/./c/%2e%2e/'), '/a//b/./c/%2e%2e/');
});

it('locationFor (property): always absolute https:// to the served host, the path after it exactly as received', () => {
  assert.equal(locationFor('app.test', 8443, '//evil.example/x'), 'https://app.test:8443//evil.example/x');
  assert.equal(locationFor('app.test', 443, '/x'), 'https://app.test/x');
  const target = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }).map((s) => `/${s}`), fc.string({ maxLength: 40 }).map((s) => `//${s}`), fc.string({ maxLength: 40 }).map((s) => `http://x${s}`));
  fc.assert(
    fc.property(target, (u) => {
      const loc = locationFor('app.test', 8443, u);
      const path = pathAndQuery(u);
      return loc === `https://app.test:8443${path}` && path.startsWith('/') && new URL(loc).host === 'app.test:8443' && (!u.startsWith('/') || path === u);
    }),
    { numRuns: 2000 },
  );
});
