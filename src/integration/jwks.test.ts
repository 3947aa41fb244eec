/**
 * Keys from a JWKS URL: fetched at start, refreshed (a new kid is fetched on first sight),
 * and refused with 503 once the last good fetch is older than jwks_max_stale.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { it } from 'node:test';
import { baseConfig, request, startGateway, startUpstream } from '../testing/harness.js';
import { bearer, keyDir, makeKey, sign, type TestKey } from '../testing/tokens.js';

const jwk = (k: TestKey) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, alg: k.alg, use: 'sig' });

it('fetches keys from a JWKS URL, picks up a rotated key, and refuses (503) when the JWKS is stale', async () => {
  const dir = keyDir();
  const k1 = makeKey(dir, 'j1', 'ES256');
  const k2 = makeKey(dir, 'j2', 'RS256');
  let keys = [jwk(k1)];
  let up = true;
  const server: Server = createServer((req, res) => {
    if (!up) return res.destroy();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  const upstream = await startUpstream();
  const g = await startGateway(
    baseConfig(upstream.url, { auth: {} }, { auth: { issuers: [{ id: 'idp', iss: 'https://issuer.test', jwks_url: url, jwks_refresh: '300ms', jwks_max_stale: '1500ms' }] }, identities: { unknown_identity: 'allow' } }),
  );
  try {
    assert.equal((await request(`${g.url}/x`, { headers: bearer(await sign(k1)) })).status, 200);
    keys = [jwk(k1), jwk(k2)];
    const t2 = await sign(k2);
    const end = Date.now() + 5000;
    let s = 0;
    while ((s = (await request(`${g.url}/x`, { headers: bearer(t2) })).status) !== 200) {
      if (Date.now() > end) assert.fail(`rotated key never accepted (${s})`);
      await new Promise((r) => setTimeout(r, 50));
    }
    up = false;
    const t3 = await sign(k1);
    const end2 = Date.now() + 8000;
    let r = await request(`${g.url}/x`, { headers: bearer(t3) });
    while (r.status !== 503) {
      if (Date.now() > end2) assert.fail(`stale JWKS still trusted (${r.status})`);
      await new Promise((res) => setTimeout(res, 100));
      r = await request(`${g.url}/x`, { headers: bearer(await sign(k1)) });
    }
    assert.match(r.body, /"token_keys_unavailable"/);
  } finally {
    await g.close();
    await upstream.close();
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  }
});
