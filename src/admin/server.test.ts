import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { baseConfig, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { AdminError, bearerMatches } from './server.js';

describe('admin API routes and authentication', () => {
  let up: Upstream;
  let open: TestGateway;
  let secured: TestGateway;
  before(async () => {
    up = await startUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-admin-'));
    const tokenFile = join(dir, 'admin.token');
    writeFileSync(tokenFile, 'the-admin-token-for-the-admin-server-tests\n');
    chmodSync(tokenFile, 0o600);
    open = await startGateway(baseConfig(up.url));
    secured = await startGateway(baseConfig(up.url, {}, { admin: { listen: '127.0.0.1:0', token_file: tokenFile } }));
    for (const gw of [open, secured]) {
      gw.gw.adminRoutes.push(
        { method: 'GET', path: '/v1/ping', auth: true, handle: (r) => r.send(200, { pong: true }) },
        { method: 'POST', path: /^\/v1\/echo\/(?<name>[a-z]+)$/, auth: true, handle: async (r) => r.send(201, { name: r.params.name, body: await r.json() }) },
        {
          method: 'GET',
          path: '/v1/boom',
          auth: true,
          handle: () => {
            throw new AdminError('bad_request');
          },
        },
      );
    }
  });
  after(async () => {
    await open.close();
    await secured.close();
    await up.close();
  });

  it('refuses API routes when no admin authentication is configured', async () => {
    const r = await fetch(`${open.adminUrl}/v1/ping`);
    assert.equal(r.status, 403);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'admin_auth_not_configured');
    assert.equal((await fetch(`${open.adminUrl}/healthz`)).status, 200, 'probes stay open');
  });

  it('requires the bearer token from the token file', async () => {
    const none = await fetch(`${secured.adminUrl}/v1/ping`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.equal((await fetch(`${secured.adminUrl}/v1/ping`, { headers: { Authorization: 'Bearer wrong' } })).status, 401);
    const ok = await fetch(`${secured.adminUrl}/v1/ping`, { headers: { Authorization: 'Bearer the-admin-token-for-the-admin-server-tests' } });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { pong: true });
  });

  it('routes by pattern with params and JSON bodies; coded errors; 404/405', async () => {
    const auth = { Authorization: 'Bearer the-admin-token-for-the-admin-server-tests', 'Content-Type': 'application/json' };
    const r = await fetch(`${secured.adminUrl}/v1/echo/abc`, { method: 'POST', headers: auth, body: JSON.stringify({ x: 1 }) });
    assert.equal(r.status, 201);
    assert.deepEqual(await r.json(), { name: 'abc', body: { x: 1 } });
    const bad = await fetch(`${secured.adminUrl}/v1/echo/abc`, { method: 'POST', headers: auth, body: '{nope' });
    assert.equal(bad.status, 400);
    assert.equal((await fetch(`${secured.adminUrl}/v1/boom`, { headers: auth })).status, 400);
    assert.equal((await fetch(`${secured.adminUrl}/v1/nothing`, { headers: auth })).status, 404);
    assert.equal((await fetch(`${secured.adminUrl}/v1/ping`, { method: 'DELETE', headers: auth })).status, 405);
  });

  it('bearerMatches is strict about the scheme and the token', () => {
    assert.equal(bearerMatches('Bearer abc', 'abc'), true);
    assert.equal(bearerMatches('bearer abc', 'abc'), false);
    assert.equal(bearerMatches('Bearer abc ', 'abc'), false);
    assert.equal(bearerMatches('Bearer abcd', 'abc'), false);
    assert.equal(bearerMatches(undefined, 'abc'), false);
  });
});
