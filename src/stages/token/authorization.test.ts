import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { bearerToken, looksLikeJws, type AuthorizationResult } from './authorization.js';

const kind = (r: AuthorizationResult): string => (typeof r === 'string' ? 'token' : r.kind);

const JWS = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln';

it('extracts a bearer token; the scheme is case-insensitive', () => {
  for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) assert.equal(bearerToken(['Authorization', `${scheme} ${JWS}`], 8192), JWS);
  assert.equal(bearerToken(['authorization', `Bearer   ${JWS}`], 8192), JWS);
  assert.equal(bearerToken(['aUtHoRiZaTiOn', `Bearer ${JWS}`], 8192), JWS);
});

it('classifies missing, malformed and invalid credentials', () => {
  assert.equal(kind(bearerToken(['Host', 'x'], 8192)), 'missing');
  assert.equal(kind(bearerToken(['Authorization', `Bearer ${JWS}`, 'AUTHORIZATION', `Bearer ${JWS}`], 8192)), 'malformed');
  assert.equal(kind(bearerToken(['Authorization', 'Basic YTpi'], 8192)), 'missing', 'another scheme is no bearer credential (RFC 6750 §3.1)');
  assert.equal(kind(bearerToken(['Authorization', 'Bearer'], 8192)), 'malformed');
  assert.equal(kind(bearerToken(['Authorization', 'Bearer '], 8192)), 'malformed');
  assert.equal(kind(bearerToken(['Authorization', `Bearer\t${JWS}`], 8192)), 'malformed');
  assert.equal(kind(bearerToken(['Authorization', `Bearer ${'a'.repeat(300)}.b.c`], 256)), 'malformed');
  assert.equal(looksLikeJws('a.b'), false);
  assert.equal(looksLikeJws('a.b.'), false);
  assert.equal(looksLikeJws('a.b.c d'), false);
  assert.equal(looksLikeJws('a.b.c.d'), false);
  assert.equal(looksLikeJws(JWS), true);
});

it('matches the header name and scheme exactly as lower-casing would (property, with one-bit and non-ASCII neighbours)', () => {
  // Mostly a case variant of the expected letter, sometimes a near miss: the letter with
  // another bit flipped, '@' / '`' (one 0x20 away from 'A'-1 / 'a'-1), or a non-ASCII
  // letter whose lower case is special (Kelvin sign, dotted I, Latin-1 accents).
  const word = (w: string) =>
    fc.tuple(
      ...[...w].map((c) =>
        fc.oneof(
          { weight: 40, arbitrary: fc.constantFrom(c, c.toUpperCase()) },
          { weight: 1, arbitrary: fc.constantFrom(String.fromCharCode(c.charCodeAt(0) ^ 0x01), String.fromCharCode(c.charCodeAt(0) - 0x20 ^ 0x40), '@', '`', '\u212a', '\u0130', '\u00c1', '\u00e1') },
        ),
      ),
    );
  fc.assert(
    fc.property(word('authorization'), word('bearer'), (n, sch) => {
      const name = n.join('');
      const scheme = sch.join('');
      const expected = name.toLowerCase() === 'authorization' && scheme.toLowerCase() === 'bearer' ? 'token' : 'missing';
      assert.equal(kind(bearerToken([name, `${scheme} ${JWS}`], 8192)), expected);
    }),
    { numRuns: 2000 },
  );
  assert.equal(kind(bearerToken(['Cache-Control', `Bearer ${JWS}`, 'If-None-Match', `Bearer ${JWS}`], 8192)), 'missing');
});

it('never throws and only returns tokens within the size limit, without surrounding spaces (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('Authorization', 'authorization', 'X-Other'), fc.string({ maxLength: 400 })), { maxLength: 4 }), fc.integer({ min: 256, max: 512 }), (pairs, max) => {
      const r = bearerToken(pairs.flat(), max);
      if (typeof r === 'string') {
        assert.ok(r.length > 0 && r.length <= max);
        assert.notEqual(r.charCodeAt(0), 32);
      }
    }),
  );
});

it('X-Api-Key carries the token only where the site allows it, never together with Authorization', () => {
  assert.deepEqual(bearerToken(['X-Api-Key', JWS], 8192), { kind: 'missing' }, 'not read by default');
  assert.equal(bearerToken(['x-api-key', JWS], 8192, true), JWS);
  assert.equal(bearerToken(['X-API-KEY', ` ${JWS} `], 8192, true), JWS);
  assert.deepEqual(bearerToken(['x-api-key', JWS, 'x-api-key', JWS], 8192, true), { kind: 'malformed', reason: 'several Authorization headers' });
  assert.deepEqual(bearerToken(['authorization', `Bearer ${JWS}`, 'x-api-key', JWS], 8192, true), { kind: 'malformed', reason: 'both Authorization and X-Api-Key' });
  assert.deepEqual(bearerToken(['x-api-key', ''], 8192, true), { kind: 'malformed', reason: 'empty Bearer credential' });
  assert.deepEqual(bearerToken(['x-api-key', 'a'.repeat(300)], 256, true), { kind: 'malformed', reason: 'Authorization header too large' });
  assert.equal(bearerToken(['Authorization', `Bearer ${JWS}`], 8192, true), JWS, 'Authorization still works');
});
