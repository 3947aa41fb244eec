/**
 * The identity registry and per-identity limits through the real gateway and its admin
 * API: unknown subjects, suspension of identities whose tokens are already issued,
 * per-identity budgets (own rpm_limit, defaults by type and role, isolation), and tokens
 * issued by the admin API when an issuer key is configured.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateKeys } from '../identity/issue.js';
import { baseConfig, request, startGateway, startUpstream, type Reply, type TestGateway, type Upstream } from '../testing/harness.js';
import { bearer, keyDir, makeKey, sign } from '../testing/tokens.js';

const code = (r: Reply): string => (r.status < 300 ? 'ok' : (JSON.parse(r.body) as { error: { code: string } }).error.code);

describe('identity registry, suspension and per-identity limits', { concurrency: false }, () => {
  let up: Upstream;
  let g: TestGateway;
  const dir = keyDir();
  const key = makeKey(dir, 'k1');
  const admin = randomBytes(24).toString('hex');
  const tokenFile = join(mkdtempSync(join(tmpdir(), 'gatehouse-admin-')), 'admin.token');
  writeFileSync(tokenFile, admin);
  chmodSync(tokenFile, 0o600);
  let issued: Awaited<ReturnType<typeof generateKeys>>;

  const api = (method: string, path: string, body?: unknown) =>
    request(`${g.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const get = (token: string) => request(`${g.url}/x`, { headers: bearer(token) });

  before(async () => {
    issued = await generateKeys(join(dir, 'issuer'), { alg: 'ES256', kid: 'admin-1' });
    up = await startUpstream();
    g = await startGateway(
      baseConfig(
        up.url,
        { auth: {} },
        {
          admin: { listen: '127.0.0.1:0', token_file: tokenFile, issuer: { key_file: issued.privateKeyFile, kid: 'admin-1', iss: 'https://gatehouse.local' } },
          auth: {
            issuers: [
              { id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: 'k1', file: key.file }] },
              { id: 'local', iss: 'https://gatehouse.local', jwks_file: issued.jwksFile },
            ],
          },
          identities: { refresh_interval: '5s', human_rpm_by_role: { default: 120, admin: 600 } },
        },
      ),
    );
    for (const body of [
      { subject: 'agent-1', type: 'agent', domain: 'billing', rpm_limit: 3 },
      { subject: 'agent-2', type: 'agent', rpm_limit: 3 },
      { subject: 'agent-3', type: 'agent' },
      { subject: 'alice', type: 'human', role: 'admin' },
    ]) {
      assert.equal((await api('POST', '/v1/identities', body)).status, 201);
    }
  });

  after(async () => {
    await g.close();
    await up.close();
  });

  it('the admin API needs the admin token and refuses duplicates and bad input', async () => {
    assert.equal((await request(`${g.adminUrl}/v1/identities`)).status, 401);
    assert.equal(code(await api('POST', '/v1/identities', { subject: 'agent-1', type: 'agent' })), 'identity_exists');
    assert.equal(code(await api('POST', '/v1/identities', { subject: 'x', type: 'robot' })), 'bad_request');
    assert.equal((await api('GET', '/v1/identities/agent-1')).status, 200);
    assert.equal(code(await api('GET', '/v1/identities/nobody')), 'not_found');
  });

  it('refuses a valid token of an unregistered subject (unknown_identity: refuse)', async () => {
    const r = await get(await sign(key, { sub: 'stranger' }));
    assert.equal(r.status, 403);
    assert.equal(code(r), 'unknown_identity');
  });

  it('a suspension refuses tokens already issued at once, and resuming lifts it', async () => {
    const t = await sign(key, { sub: 'agent-3' });
    assert.equal((await get(t)).status, 200);
    assert.equal((await api('PATCH', '/v1/identities/agent-3', { status: 'suspended' })).status, 200);
    // The admin API refreshes this instance's view at once (other instances: push or poll).
    const r = await get(t);
    assert.equal(r.status, 403);
    assert.equal(code(r), 'identity_suspended');
    assert.equal((await api('PATCH', '/v1/identities/agent-3', { status: 'active' })).status, 200);
    assert.equal((await get(t)).status, 200);
  });

  it('each identity has its own budget (its rpm_limit); two tokens of one identity share it', async () => {
    const a1 = await sign(key, { sub: 'agent-1' });
    const a1b = await sign(key, { sub: 'agent-1' });
    const a2 = await sign(key, { sub: 'agent-2' });
    const first = await get(a1);
    assert.equal(first.status, 200);
    assert.equal(first.headers['ratelimit-policy'], '"identity";q=3;w=60');
    assert.equal(first.headers.ratelimit, '"identity";r=2;t=60');
    assert.equal((await get(a1b)).status, 200);
    assert.equal((await get(a1)).status, 200);
    const over = await get(a1b);
    assert.equal(over.status, 429);
    assert.equal(code(over), 'rate_limited');
    assert.ok(Number(over.headers['retry-after']) >= 1);
    assert.equal(over.headers.ratelimit, `"identity";r=0;t=${over.headers['retry-after']}`);
    assert.equal((await get(a2)).status, 200, 'another identity is not affected');
    // The registry value is the limit: raising it takes effect without a restart.
    assert.equal((await api('PATCH', '/v1/identities/agent-1', { rpm_limit: 10 })).status, 200);
    const again = await get(a1);
    assert.equal(again.status, 200);
    assert.equal(again.headers['ratelimit-policy'], '"identity";q=10;w=60');
  });

  it('defaults: 60/min for agents without their own limit, per role for humans', async () => {
    assert.equal((await get(await sign(key, { sub: 'agent-3' }))).headers['ratelimit-policy'], '"identity";q=60;w=60');
    const h = await get(await sign(key, { sub: 'alice', type: 'human', role: 'admin' }));
    assert.equal(h.status, 200);
    assert.equal(h.headers['ratelimit-policy'], '"identity";q=600;w=60');
  });

  it('revocations through the admin API; tokens issued by the admin API when an issuer key is configured', async () => {
    const made = await api('POST', '/v1/tokens', { sub: 'agent-2', type: 'agent', ttl: 600 });
    assert.equal(made.status, 201, made.body);
    const { token, jti } = JSON.parse(made.body) as { token: string; jti: string };
    assert.equal((await get(token)).status, 200);
    assert.equal((await api('POST', '/v1/revocations', { jti })).status, 201);
    assert.equal(code(await get(token)), 'token_revoked');
    const list = JSON.parse((await api('GET', '/v1/revocations')).body) as { current: boolean; revocations: Array<{ kind: string }> };
    assert.equal(list.current, true);
    assert.equal(list.revocations.length, 1);
    assert.equal(code(await api('POST', '/v1/revocations', { subject: 'agent-2', before: Date.now() / 1000 + 3600 })), 'bad_request');
    assert.equal(code(await api('POST', '/v1/tokens', { sub: 'agent-2', type: 'agent', ttl: 10 * 86_400 })), 'bad_request', 'never longer than max_token_lifetime');
  });
});
