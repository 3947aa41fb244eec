/**
 * https:// upstreams: verified against the trust pool (the internal root by default, or
 * ca_file), with the name checked, and a client certificate from the internal CA
 * (mTLS) that is renewed while running. Every failure is a 502 upstream_tls_error.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request, sleep, startGateway, type TestGateway } from '../testing/harness.js';
import { createTestCa, startHttpsUpstream, type TestCa } from '../testing/tls.js';

type HttpsUp = Awaited<ReturnType<typeof startHttpsUpstream>>;

describe('upstream TLS and mTLS', () => {
  let ca: TestCa;
  let other: TestCa;
  let mtls: HttpsUp;
  let foreign: HttpsUp;
  let expired: HttpsUp;
  let gw: TestGateway;
  let otherRoot: string;

  before(async () => {
    ca = await createTestCa();
    other = await createTestCa();
    const cert = await ca.issue({ name: 'upstream.internal', ips: ['127.0.0.1'], lifetimeMs: 3_600_000 });
    // Requires a client certificate from the internal CA.
    mtls = await startHttpsUpstream({ cert: cert.chainPem, key: cert.keyPem, ca: ca.rootPem, requireClientCert: true });
    const foreignCert = await other.issue({ name: 'upstream.internal', ips: ['127.0.0.1'], lifetimeMs: 3_600_000 });
    foreign = await startHttpsUpstream({ cert: foreignCert.chainPem, key: foreignCert.keyPem });
    const old = await ca.issue({ name: 'upstream.internal', lifetimeMs: 3_600_000, now: new Date(Date.now() - 7_200_000) });
    expired = await startHttpsUpstream({ cert: old.chainPem, key: old.keyPem });
    otherRoot = join(other.dir, 'other-root.pem');
    writeFileSync(otherRoot, other.rootPem);
    const site = (id: string, url: string, tls: Record<string, unknown>) => ({ id, hosts: [`${id}.test`], upstream: { urls: [url], tls } });
    gw = await startGateway({
      listen: [{ address: '127.0.0.1:0' }],
      admin: { listen: '127.0.0.1:0' },
      // 6 s client certificates: one renewal happens during the test.
      ca: { dir: ca.caDir, password_file: ca.passwordFile, lifetime: '6s' },
      sites: [
        site('mtls', mtls.url, { server_name: 'upstream.internal', client_cert: 'internal' }),
        site('byip', mtls.url, { client_cert: 'internal' }),
        site('wrongname', mtls.url, { server_name: 'other.internal', client_cert: 'internal' }),
        site('nocert', mtls.url, { server_name: 'upstream.internal' }),
        site('untrusted', foreign.url, { server_name: 'upstream.internal', client_cert: 'internal' }),
        site('cafile', foreign.url, { server_name: 'upstream.internal', ca_file: otherRoot }),
        site('cafileonly', mtls.url, { server_name: 'upstream.internal', ca_file: otherRoot, client_cert: 'internal' }),
        site('expired', expired.url, { server_name: 'upstream.internal' }),
        { id: 'twohosts', hosts: ['one.test', 'two.test'], upstream: { urls: [foreign.url], max_connections: 4, tls: { server_name: 'upstream.internal', ca_file: otherRoot } } },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await Promise.all([mtls.close(), foreign.close(), expired.close()]);
  });

  const get = (site: string, path = '/') => request(`${gw.url}${path}`, { headers: { host: `${site}.test` } });

  it('mTLS success: the upstream is verified by name against the internal root and sees the gateway client certificate', async () => {
    const r = await get('mtls', '/hello');
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { url: string; client_cn: string };
    assert.equal(body.url, '/hello');
    assert.equal(body.client_cn, 'gatehouse');
    // Without server_name the URL's host (an IP) is checked against the IP SANs.
    assert.equal((await get('byip')).status, 200);
  });

  it('the name is checked against server_name, never the client Host header', async () => {
    // The client asks for wrongname.test; the gateway checks other.internal, which the upstream certificate does not name.
    const r = await get('wrongname');
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body).error.code, 'upstream_tls_error');
  });

  it('a certificate not chained to the pool → 502 upstream_tls_error; ca_file replaces the default pool', async () => {
    const r = await get('untrusted');
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body).error.code, 'upstream_tls_error');
    assert.equal((await get('cafile')).status, 200, 'trusted through ca_file');
    const only = await get('cafileonly');
    assert.equal(only.status, 502, 'ca_file alone does not trust the internal root');
    assert.equal(JSON.parse(only.body).error.code, 'upstream_tls_error');
  });

  it('requests for several host names of one site share pooled TLS connections (no reconnect per Host)', async () => {
    let handshakes = 0;
    const count = () => handshakes++;
    foreign.server.on('secureConnection', count);
    try {
      for (let i = 0; i < 6; i++) {
        const r = await request(`${gw.url}/`, { headers: { host: i % 2 === 0 ? 'one.test' : 'two.test' } });
        assert.equal(r.status, 200);
      }
      assert.equal(handshakes, 1, 'one upstream TLS connection for all six requests');
    } finally {
      foreign.server.off('secureConnection', count);
    }
  });

  it('an expired upstream certificate → 502 upstream_tls_error', async () => {
    const r = await get('expired');
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body).error.code, 'upstream_tls_error');
  });

  it('no client certificate: the upstream refuses the handshake → 502 upstream_tls_error', async () => {
    const r = await get('nocert');
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body).error.code, 'upstream_tls_error');
    assert.equal(mtls.seen.filter((s) => s.headers.host === 'nocert.test').length, 0);
    const m = await request(`${gw.adminUrl}/metrics`);
    assert.match(m.body, /gatehouse_upstream_errors_total\{site="nocert",code="upstream_tls_error"\} [1-9]/);
  });

  it('the renewed client certificate reaches new upstream connections', async () => {
    const first = JSON.parse((await get('mtls')).body) as { client_serial: string };
    assert.equal(first.client_serial, gw.gw.tls.currentSerial('upstream-client'));
    const end = Date.now() + 15000;
    while (gw.gw.tls.currentSerial('upstream-client') === first.client_serial) {
      if (Date.now() > end) throw new Error('the client certificate was not renewed');
      await sleep(50);
    }
    // Open keep-alive connections keep their certificate; end them so the next request connects anew.
    mtls.server.closeAllConnections();
    await sleep(200);
    const next = JSON.parse((await get('mtls')).body) as { client_serial: string };
    assert.equal(next.client_serial, gw.gw.tls.currentSerial('upstream-client'));
    assert.notEqual(next.client_serial, first.client_serial);
  });
});
