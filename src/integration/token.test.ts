import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../config/load.js';
import { baseConfig, parseHead, rawExchange, request, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { bearer, hs256WithPublicKey, keyDir, makeKey, nowS, sign, tamperPayload, tamperSignature, unsigned, type TestKey } from '../testing/tokens.js';

const dir = keyDir();
const k1 = makeKey(dir, 'k1', 'RS256');
const k2 = makeKey(dir, 'k2', 'ES256');
const ed = makeKey(dir, 'ed', 'EdDSA');
const stranger = makeKey(keyDir(), 'k1', 'RS256'); // same kid, different key: not ours

function authConfig(upstreamUrl: string, keys: TestKey[], site: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  return baseConfig(
    upstreamUrl,
    { auth: {}, ...site },
    {
      auth: { issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: keys.map((k) => ({ kid: k.kid, file: k.file })) }] },
      identities: { unknown_identity: 'allow' },
      ...top,
    },
  );
}

function body(r: { body: string }): { error: { code: string; message: string } } {
  return JSON.parse(r.body) as { error: { code: string; message: string } };
}

describe('token verification', () => {
  let up: Upstream;
  let g: TestGateway;
  before(async () => {
    up = await startUpstream();
    g = await startGateway(authConfig(up.url, [k1, k2, ed], {}, { http: { max_header_bytes: '64KiB' } }));
  });
  after(async () => {
    await g.close();
    await up.close();
  });

  /** RFC 6750 §3.1: no credential → no error code; a malformed one → 400 invalid_request; a bad one → 401 invalid_token. */
  const refused = async (headers: Record<string, string>, code: string, error: string | null = 'invalid_token') => {
    const r = await request(`${g.url}/x`, { headers });
    assert.equal(r.status, code === 'malformed_authorization' ? 400 : 401, `${code}: ${r.body}`);
    assert.equal(body(r).error.code, code);
    assert.equal(r.headers['www-authenticate'], error === null ? 'Bearer realm="gatehouse"' : `Bearer realm="gatehouse", error="${error}"`);
    return r;
  };

  it('passes a valid RS256, ES256 and EdDSA token and sends the identity upstream, never the token', async () => {
    for (const k of [k1, k2, ed]) {
      const t = await sign(k, { sub: 'agent-7', role: 'reader', domain: 'billing', agent_id: 'a-7' });
      const r = await request(`${g.url}/x`, { headers: { ...bearer(t), 'x-gatehouse-subject': 'root', 'X-Gatehouse-Role': 'admin' } });
      assert.equal(r.status, 200, r.body);
      const seen = up.seen.at(-1);
      assert.ok(seen);
      assert.equal(seen.headers['x-gatehouse-subject'], 'agent-7');
      assert.equal(seen.headers['x-gatehouse-identity-type'], 'agent');
      assert.equal(seen.headers['x-gatehouse-role'], 'reader');
      assert.equal(seen.headers['x-gatehouse-domain'], 'billing');
      assert.equal(seen.headers['x-gatehouse-agent'], 'a-7');
      assert.equal(seen.headers.authorization, undefined, 'the caller token is not forwarded');
      assert.equal(seen.rawHeaders.filter((h) => h.toLowerCase() === 'x-gatehouse-subject').length, 1, 'client copy stripped');
    }
  });

  it('a request without credentials gets 401 missing_token and a challenge without an error code (RFC 6750 §3.1)', async () => {
    await refused({}, 'missing_token', null);
    await refused({ authorization: '' }, 'missing_token', null);
    await refused({ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, 'missing_token', null);
  });

  it('a malformed Authorization gets 400 malformed_authorization with error="invalid_request"; an invalid token 401 error="invalid_token"', async () => {
    await refused({ authorization: 'Bearer' }, 'malformed_authorization', 'invalid_request');
    await refused({ authorization: 'Bearer    ' }, 'malformed_authorization', 'invalid_request');
    await refused({ authorization: 'Bearer not-a-jws' }, 'invalid_token', 'invalid_token');
    await refused(bearer(tamperSignature(await sign(k1))), 'invalid_token', 'invalid_token');
  });

  it('refuses alg none, HS256 keyed with the public key, unknown and path-like kids', async () => {
    await refused(bearer(unsigned({}, { alg: 'none', kid: 'k1' }) + 'x'), 'invalid_token');
    await refused(bearer(unsigned({}, { alg: 'none', kid: 'k1' })), 'invalid_token');
    await refused(bearer(hs256WithPublicKey(k1)), 'invalid_token');
    await refused(bearer(await sign(k1, {}, { kid: 'nope' })), 'invalid_token');
    await refused(bearer(await sign(k1, {}, { kid: '../../../../etc/passwd' })), 'invalid_token');
    await refused(bearer(await sign(k1, {}, { kid: 'k1/../k2' })), 'invalid_token');
    await refused(bearer(await sign(stranger)), 'invalid_token');
    // RS256 key announced as ES256 / a token claiming another algorithm than its key's.
    await refused(bearer(await sign(k2, {}, { kid: 'k1' })), 'invalid_token');
  });

  it('refuses tampered payloads and signatures', async () => {
    const t = await sign(k1);
    assert.equal((await request(`${g.url}/x`, { headers: bearer(t) })).status, 200);
    await refused(bearer(tamperPayload(t, { sub: 'admin' })), 'invalid_token');
    await refused(bearer(tamperSignature(t)), 'invalid_token');
    await refused(bearer(tamperSignature(await sign(k2))), 'invalid_token');
  });

  it('checks exp, nbf, iat, iss, aud and requires exp', async () => {
    const t = nowS();
    await refused(bearer(await sign(k1, { iat: t - 600, exp: t - 60 })), 'token_expired');
    // Within the 30 s leeway: still accepted.
    assert.equal((await request(`${g.url}/x`, { headers: bearer(await sign(k1, { iat: t - 600, exp: t - 10 })) })).status, 200);
    await refused(bearer(await sign(k1, { nbf: t + 120 })), 'invalid_token');
    await refused(bearer(await sign(k1, { iat: t + 120, exp: t + 400 })), 'invalid_token');
    await refused(bearer(await sign(k1, { iss: 'https://evil.test' })), 'invalid_token');
    await refused(bearer(await sign(k1, { aud: 'other' })), 'invalid_token');
    await refused(bearer(await sign(k1, { exp: undefined })), 'invalid_token');
    // Longer than revocation.max_token_lifetime (24 h): refused, so revocation entries can expire.
    await refused(bearer(await sign(k1, { exp: t + 3 * 86_400 })), 'invalid_token');
    await refused(bearer(await sign(k1, { type: 'robot' })), 'invalid_token');
    await refused(bearer(await sign(k1, { sub: undefined })), 'invalid_token');
    // Identity values become upstream headers: no control characters, no header injection.
    await refused(bearer(await sign(k1, { sub: 'agent\r\nX-Admin: 1' })), 'invalid_token');
    await refused(bearer(await sign(k1, { role: 'a\nb' })), 'invalid_token');
    await refused(bearer(await sign(k1, { domain: 42 })), 'invalid_token');
  });

  it('answers every invalid token alike: the body never says which check failed', async () => {
    const a = await refused(bearer(tamperSignature(await sign(k1))), 'invalid_token');
    const b = await refused(bearer(await sign(k1, { aud: 'other' })), 'invalid_token');
    assert.equal(body(a).error.message, body(b).error.message);
    assert.doesNotMatch(a.body + b.body, /aud|signature|kid|iss/i);
    const logged = g.logs.filter((l) => l.code === 'invalid_token' && typeof l.cause === 'string');
    assert.ok(logged.length > 0, 'the cause is logged');
  });

  it('accepts a lowercase bearer scheme (schemes are case-insensitive) and refuses other schemes', async () => {
    const t = await sign(k1);
    assert.equal((await request(`${g.url}/x`, { headers: { authorization: `bearer ${t}` } })).status, 200);
    assert.equal((await request(`${g.url}/x`, { headers: { authorization: `BEARER ${t}` } })).status, 200);
    await refused({ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, 'missing_token', null);
    await refused({ authorization: 'Bearer' }, 'malformed_authorization', 'invalid_request');
  });

  it('refuses two Authorization headers', async () => {
    const t = await sign(k1);
    const r = await rawExchange(g.port, `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${t}\r\nAuthorization: Bearer ${t}\r\nConnection: close\r\n\r\n`);
    const head = parseHead(r.bytes);
    assert.equal(head.status, 400);
    assert.match(head.body, /"malformed_authorization"/);
    assert.equal(head.headers['www-authenticate'], 'Bearer realm="gatehouse", error="invalid_request"');
  });

  it('refuses oversize tokens before any parsing: 20 KB → 400, 1 MB → 431 at the parser', async () => {
    const big = 'a'.repeat(20_000);
    await refused({ authorization: `Bearer ${big}.${big}.${big}`.slice(0, 20_000) }, 'malformed_authorization', 'invalid_request');
    const mb = `Bearer ${'A'.repeat(1024 * 1024)}`;
    const r = await rawExchange(g.port, `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${mb}\r\nConnection: close\r\n\r\n`);
    assert.equal(parseHead(r.bytes).status, 431);
  });

  it('serves the same token from the cache and still expires it', async () => {
    const t = await sign(k1, { exp: nowS() + 2, iat: nowS() });
    for (let i = 0; i < 3; i++) assert.equal((await request(`${g.url}/x`, { headers: bearer(t) })).status, 200);
  });
});

describe('token verification options', () => {
  it('RSA-4096 keys work; RSA keys under 2048 bits are a config error', async () => {
    const up = await startUpstream();
    const big = makeKey(dir, 'big', 'RS256', 4096);
    const g = await startGateway(authConfig(up.url, [big]));
    try {
      assert.equal((await request(`${g.url}/x`, { headers: bearer(await sign(big)) })).status, 200);
    } finally {
      await g.close();
      await up.close();
    }
    const weak = makeKey(dir, 'weak', 'RS256', 1024);
    assert.throws(
      () => parseConfig(stringify(authConfig('http://127.0.0.1:1', [weak])), `${dir}/gatehouse.yaml`),
      (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.path === 'auth.issuers[0].keys[0].file' && /1024 bits/.test(p.message)),
    );
  });

  it('key rotation: old and new keys both valid during the overlap; the old one stops after it is removed, cached or not', async () => {
    const up = await startUpstream();
    const oldK = makeKey(dir, 'old', 'RS256');
    const newK = makeKey(dir, 'new', 'ES256');
    const g = await startGateway(authConfig(up.url, [oldK]));
    try {
      const tOld = await sign(oldK);
      assert.equal((await request(`${g.url}/x`, { headers: bearer(tOld) })).status, 200);
      g.write(authConfig(up.url, [oldK, newK]));
      assert.equal((await g.gw.reload()).ok, true);
      const tNew = await sign(newK);
      assert.equal((await request(`${g.url}/x`, { headers: bearer(tOld) })).status, 200, 'old key still valid in the overlap');
      assert.equal((await request(`${g.url}/x`, { headers: bearer(tNew) })).status, 200);
      g.write(authConfig(up.url, [newK]));
      assert.equal((await g.gw.reload()).ok, true);
      assert.equal((await request(`${g.url}/x`, { headers: bearer(tOld) })).status, 401);
      assert.equal((await request(`${g.url}/x`, { headers: bearer(tNew) })).status, 200);
    } finally {
      await g.close();
      await up.close();
    }
  });

  it('protects only the configured path classes, and passes Authorization only when the site says so', async () => {
    const up = await startUpstream();
    const g = await startGateway(authConfig(up.url, [k1], { auth: { paths: ['/api*'], pass_authorization: true } }));
    try {
      assert.equal((await request(`${g.url}/public`)).status, 200);
      assert.equal((await request(`${g.url}/api/x`)).status, 401);
      const t = await sign(k1);
      assert.equal((await request(`${g.url}/api/x`, { headers: bearer(t) })).status, 200);
      assert.equal(up.seen.at(-1)?.headers.authorization, `Bearer ${t}`);
      // An anonymous request cannot smuggle an identity header either.
      await request(`${g.url}/public`, { headers: { 'x-gatehouse-subject': 'root' } });
      assert.equal(up.seen.at(-1)?.headers['x-gatehouse-subject'], undefined);
    } finally {
      await g.close();
      await up.close();
    }
  });
});
