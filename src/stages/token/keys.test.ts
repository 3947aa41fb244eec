import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { it } from 'node:test';
import { algorithmFor, parseJwks } from './keys.js';

const rsa = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits });
const ALL = ['RS256', 'ES256', 'EdDSA', 'PS256'];

it('pins each key to one algorithm and refuses weak RSA, private keys and mismatches', () => {
  assert.deepEqual(algorithmFor(rsa(2048).publicKey, undefined, ALL), { alg: 'RS256' });
  assert.deepEqual(algorithmFor(rsa(2048).publicKey, 'PS256', ALL), { alg: 'PS256' });
  assert.match((algorithmFor(rsa(1024).publicKey, undefined, ALL) as { error: string }).error, /1024 bits/);
  assert.match((algorithmFor(rsa(2048).publicKey, 'ES256', ALL) as { error: string }).error, /cannot verify ES256/);
  assert.match((algorithmFor(rsa(2048).publicKey, undefined, ['ES256']) as { error: string }).error, /not in this issuer/);
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  assert.deepEqual(algorithmFor(ec.publicKey, undefined, ALL), { alg: 'ES256' });
  assert.ok('error' in algorithmFor(ec.publicKey, 'RS256', ALL));
  assert.deepEqual(algorithmFor(generateKeyPairSync('ed25519').publicKey, undefined, ALL), { alg: 'EdDSA' });
});

it('a JWKS never yields symmetric keys, private keys or keys without kid', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pub = ec.publicKey.export({ format: 'jwk' });
  const priv = ec.privateKey.export({ format: 'jwk' });
  const r = parseJwks(
    JSON.stringify({
      keys: [
        { ...pub, kid: 'good' },
        { ...priv, kid: 'private' },
        { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' },
        { ...pub },
        { ...pub, kid: 'enc', use: 'enc' },
      ],
    }),
    ALL,
  );
  assert.deepEqual(r.keys.map((k) => k.kid), ['good']);
  assert.equal(r.problems.length, 3);
  assert.deepEqual(parseJwks('nope', ALL).problems, ['not valid JSON']);
});
