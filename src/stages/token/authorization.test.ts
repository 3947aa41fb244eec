import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { bearerToken, looksLikeJws } from './authorization.js';

const JWS = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln';

it('extracts a bearer token; the scheme is case-insensitive', () => {
  for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) assert.deepEqual(bearerToken(['Authorization', `${scheme} ${JWS}`], 8192), { kind: 'token', token: JWS });
  assert.deepEqual(bearerToken(['authorization', `Bearer   ${JWS}`], 8192), { kind: 'token', token: JWS });
});

it('classifies missing, malformed and invalid credentials', () => {
  assert.equal(bearerToken(['Host', 'x'], 8192).kind, 'missing');
  assert.equal(bearerToken(['Authorization', `Bearer ${JWS}`, 'AUTHORIZATION', `Bearer ${JWS}`], 8192).kind, 'malformed');
  assert.equal(bearerToken(['Authorization', 'Basic YTpi'], 8192).kind, 'malformed');
  assert.equal(bearerToken(['Authorization', 'Bearer'], 8192).kind, 'malformed');
  assert.equal(bearerToken(['Authorization', 'Bearer '], 8192).kind, 'malformed');
  assert.equal(bearerToken(['Authorization', `Bearer\t${JWS}`], 8192).kind, 'malformed');
  assert.equal(bearerToken(['Authorization', `Bearer ${'a'.repeat(300)}.b.c`], 256).kind, 'malformed');
  assert.equal(looksLikeJws('a.b'), false);
  assert.equal(looksLikeJws('a.b.'), false);
  assert.equal(looksLikeJws('a.b.c d'), false);
  assert.equal(looksLikeJws('a.b.c.d'), false);
  assert.equal(looksLikeJws(JWS), true);
});

it('never throws and only returns tokens within the size limit, without surrounding spaces (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('Authorization', 'authorization', 'X-Other'), fc.string({ maxLength: 400 })), { maxLength: 4 }), fc.integer({ min: 256, max: 512 }), (pairs, max) => {
      const r = bearerToken(pairs.flat(), max);
      if (r.kind === 'token') {
        assert.ok(r.token.length > 0 && r.token.length <= max);
        assert.notEqual(r.token.charCodeAt(0), 32);
      }
    }),
  );
});
