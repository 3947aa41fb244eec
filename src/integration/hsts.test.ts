/**
 * Strict-Transport-Security only where the client's connection is HTTPS (RFC 6797 §7.2):
 * our own TLS, or X-Forwarded-Proto: https from a trusted proxy. Plain-HTTP answers carry
 * none (proxied or the gateway's own refusals), an upstream's HSTS never passes, and a site
 * that sets the header explicitly in `headers.set` gets it on every answer.
 */
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HSTS, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { createTestCa, httpsGet, type TestCa } from '../testing/tls.js';

/** GET from a chosen local address (127.0.0.2 is the trusted proxy, 127.0.0.1 is not). */
function get(port: number, from: string, host: string, headers: Record<string, string> = {}, path = '/x'): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, localAddress: from, headers: { host, ...headers }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HSTS only over HTTPS (RFC 6797 §7.2)', () => {
  let ca: TestCa;
  let up: Upstream;
  let gw: TestGateway;
  let port: number;
  let httpsPort: number;
  before(async () => {
    ca = await createTestCa();
    // The upstream sends its own HSTS: it must never reach a plain-HTTP client.
    up = await startUpstream((_req, res) => {
      res.setHeader('Strict-Transport-Security', 'max-age=5');
      res.end('ok');
    });
    gw = await startGateway({
      listen: [{ address: '127.0.0.1:0' }, { address: '127.0.0.1:0', tls: { internal_ca: true } }],
      admin: { listen: '127.0.0.1:0' },
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      trusted_proxies: ['127.0.0.2/32'],
      sites: [
        { id: 'app', hosts: ['app.test'], upstream: { urls: [up.url] } },
        { id: 'locked', hosts: ['locked.test'], upstream: { urls: [up.url] }, rate_limits: [{ id: 'one', limit: 1, window: '1m' }] },
        { id: 'explicit', hosts: ['explicit.test'], upstream: { urls: [up.url] }, headers: { set: { 'Strict-Transport-Security': 'max-age=600' } } },
      ],
    });
    port = gw.port;
    httpsPort = (gw.gw.addresses().public[1] as AddressInfo).port;
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('a plain-HTTP answer carries no HSTS, neither ours nor the upstream one', async () => {
    const r = await get(port, '127.0.0.1', 'app.test');
    assert.equal(r.status, 200);
    assert.equal(r.headers['strict-transport-security'], undefined);
    assert.equal(r.headers['x-content-type-options'], 'nosniff', 'the other security headers stay');
  });

  it("a gateway-made refusal over plain HTTP carries none either; over HTTPS it does", async () => {
    await get(port, '127.0.0.1', 'locked.test');
    const refused = await get(port, '127.0.0.1', 'locked.test');
    assert.equal(refused.status, 429);
    assert.equal(refused.headers['strict-transport-security'], undefined);
    const tls = await httpsGet(httpsPort, { ca: ca.rootPem, servername: 'locked.test' });
    assert.equal(tls.status, 429);
    assert.equal(tls.headers['strict-transport-security'], HSTS);
  });

  it('own TLS: HSTS with the default value, the upstream one replaced', async () => {
    const r = await httpsGet(httpsPort, { ca: ca.rootPem, servername: 'app.test' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['strict-transport-security'], HSTS);
  });

  it('X-Forwarded-Proto: https counts only from a trusted proxy, and only the entry that proxy wrote', async () => {
    assert.equal((await get(port, '127.0.0.2', 'app.test', { 'X-Forwarded-Proto': 'https' })).headers['strict-transport-security'], HSTS);
    assert.equal((await get(port, '127.0.0.2', 'app.test', { 'X-Forwarded-Proto': 'HTTPS' })).headers['strict-transport-security'], HSTS);
    assert.equal((await get(port, '127.0.0.1', 'app.test', { 'X-Forwarded-Proto': 'https' })).headers['strict-transport-security'], undefined, 'untrusted peer');
    assert.equal((await get(port, '127.0.0.2', 'app.test', { 'X-Forwarded-Proto': 'https, http' })).headers['strict-transport-security'], undefined, 'the trusted proxy itself was reached over http');
    assert.equal((await get(port, '127.0.0.2', 'app.test', { 'X-Forwarded-Proto': 'http' })).headers['strict-transport-security'], undefined);
    assert.equal((await get(port, '127.0.0.2', 'app.test')).headers['strict-transport-security'], undefined);
  });

  it('a site that sets Strict-Transport-Security explicitly sends it on every answer, HTTP included', async () => {
    assert.equal((await get(port, '127.0.0.1', 'explicit.test')).headers['strict-transport-security'], 'max-age=600');
    assert.equal((await httpsGet(httpsPort, { ca: ca.rootPem, servername: 'explicit.test' })).headers['strict-transport-security'], 'max-age=600');
  });
});
