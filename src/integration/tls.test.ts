/**
 * HTTPS listeners: certificates from the internal CA (issued for the site names, renewed
 * while a connection stays open), from files (swapped on disk), protocol and cipher
 * limits, unknown SNI, and the HTTP → HTTPS redirect.
 */
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { HSTS, parseHead, rawExchange, request, SECURITY_HEADERS, sleep, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { createTestCa, handshake, httpsGet, requestOn, type TestCa } from '../testing/tls.js';

async function metric(gw: TestGateway, line: RegExp): Promise<string | null> {
  const r = await request(`${gw.adminUrl}/metrics`);
  return r.body.split('\n').find((l) => line.test(l)) ?? null;
}

async function waitFor<T>(what: string, fn: () => T | null | Promise<T | null>, ms = 15000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('TLS listener with certificates from the internal CA', () => {
  let ca: TestCa;
  let up: Upstream;
  let gw: TestGateway;
  let port: number;
  let httpsPort: number;
  let config: { sites: unknown[] } & Record<string, unknown>;
  before(async () => {
    ca = await createTestCa();
    up = await startUpstream();
    config = {
      // default_sni: the wss test below connects by IP address, without SNI.
      listen: [{ address: '127.0.0.1:0', redirect_https: true }, { address: '127.0.0.1:0', tls: { internal_ca: true }, default_sni: 'app.test' }],
      admin: { listen: '127.0.0.1:0' },
      // 6 s certificates, renewed at 4 s: the renewal happens during the test.
      ca: { dir: ca.caDir, password_file: ca.passwordFile, lifetime: '6s' },
      tls: { check_interval: '200ms', expiry_warning: '1s' },
      http: { keep_alive_timeout: '60s' },
      sites: [
        { id: 'app', hosts: ['app.test', 'localhost', '127.0.0.1'], upstream: { urls: [up.url] } },
        { id: 'wild', hosts: ['*.wild.test'], upstream: { urls: [up.url] } },
      ],
    };
    gw = await startGateway(config);
    port = gw.port;
    httpsPort = (gw.gw.addresses().public[1] as AddressInfo).port;
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('serves HTTPS for each site name with a certificate chained to the internal root; X-Forwarded-Proto is https', async () => {
    const r = await httpsGet(httpsPort, { ca: ca.rootPem, servername: 'app.test', path: '/x?y=1' });
    assert.equal(r.status, 200);
    assert.equal(r.protocol, 'TLSv1.3');
    for (const [k, v] of Object.entries({ ...SECURITY_HEADERS, 'strict-transport-security': HSTS })) assert.equal(r.headers[k], v);
    const seen = up.seen.at(-1);
    assert.equal(seen?.headers['x-forwarded-proto'], 'https');
    assert.equal(seen?.url, '/x?y=1');
    const w = await httpsGet(httpsPort, { ca: ca.rootPem, servername: 'a.wild.test' });
    assert.equal(w.status, 200);
    assert.notEqual(w.serial, r.serial, 'each site has its own certificate');
  });

  it('WebSocket over TLS (wss://) is proxied, and the upstream sees X-Forwarded-Proto https', async () => {
    const wss = new WebSocketServer({ noServer: true });
    const onUpgrade = (req: import('node:http').IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) =>
      wss.handleUpgrade(req, socket, head, (ws) => ws.send(String(req.headers['x-forwarded-proto'])));
    up.server.on('upgrade', onUpgrade);
    try {
      const ws = new WebSocket(`wss://127.0.0.1:${httpsPort}/ws`, { ca: ca.rootPem, headers: { host: 'app.test' } }); // no SNI (IP URL): the default certificate, with an IP SAN
      const msg = await new Promise<string>((resolve, reject) => {
        ws.once('message', (d) => resolve(String(d)));
        ws.once('error', reject);
      });
      assert.equal(msg, 'https');
      ws.terminate();
    } finally {
      up.server.off('upgrade', onUpgrade);
      wss.close();
    }
  });

  it('TLS 1.2 negotiates an ECDHE AEAD suite; TLS 1.1 and non-forward-secret or CBC suites are refused', async () => {
    const r = await httpsGet(httpsPort, { ca: ca.rootPem, servername: 'app.test', maxVersion: 'TLSv1.2' });
    assert.equal(r.protocol, 'TLSv1.2');
    assert.match(r.cipher, /^ECDHE-ECDSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$/);
    const old = await handshake(httpsPort, 'app.test', ca.rootPem, { minVersion: 'TLSv1', maxVersion: 'TLSv1.2', ciphers: 'DEFAULT:@SECLEVEL=0' });
    assert.equal(old.ok, true, 'sanity: a 1.2-capable client connects');
    old.socket.destroy();
    const tls11 = await handshake(httpsPort, 'app.test', ca.rootPem, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' as 'TLSv1.2', ciphers: 'DEFAULT:@SECLEVEL=0' });
    assert.equal(tls11.ok, false);
    for (const cipher of ['ECDHE-ECDSA-AES128-SHA', 'AES128-GCM-SHA256']) {
      const h = await handshake(httpsPort, 'app.test', ca.rootPem, { maxVersion: 'TLSv1.2', ciphers: cipher });
      assert.equal(h.ok, false, `${cipher} must be refused`);
      assert.equal(h.cert, null);
    }
  });

  it('an unknown SNI name fails the handshake and no certificate is sent', async () => {
    const h = await handshake(httpsPort, 'unknown.example', ca.rootPem);
    assert.equal(h.ok, false);
    assert.equal(h.cert, null, 'no certificate for a name the gateway does not serve');
    // A sub-subdomain is not covered by *.wild.test either.
    const deep = await handshake(httpsPort, 'a.b.wild.test', ca.rootPem);
    assert.equal(deep.ok, false);
    assert.match((await metric(gw, /^gatehouse_tls_handshake_failures_total\{reason="unknown_server_name"\}/)) ?? '', / [2-9]\d*$/);
  });

  it('renews at two thirds of the lifetime without a restart: the open connection keeps working, a new one sees the new serial', async () => {
    const first = await handshake(httpsPort, 'app.test', ca.rootPem);
    assert.equal(first.ok, true);
    const oldSerial = first.cert?.serialNumber.toUpperCase() ?? '';
    assert.equal((await requestOn(first.socket, 'app.test', '/before')).status, 200);
    const newSerial = await waitFor('renewal', () => {
      const s = gw.gw.tls.currentSerial('site/app');
      return s !== null && s !== oldSerial ? s : null;
    });
    // The connection made with the old certificate is still open and serves requests.
    assert.equal((await requestOn(first.socket, 'app.test', '/after')).status, 200);
    assert.equal(first.socket.getPeerCertificate().serialNumber.toUpperCase(), oldSerial);
    first.socket.destroy();
    const fresh = await httpsGet(httpsPort, { ca: ca.rootPem, servername: 'app.test' });
    assert.equal(fresh.status, 200);
    assert.equal(fresh.serial, newSerial);
    assert.match((await metric(gw, /^gatehouse_tls_certificate_renewals_total\{name="site\/app"\}/)) ?? '', / [1-9]\d*$/);
    const expiry = await metric(gw, /^gatehouse_tls_certificate_expiry_timestamp_seconds\{name="site\/app"\}/);
    const t = Number(expiry?.split(' ')[1]);
    assert.ok(t * 1000 > Date.now() && t * 1000 < Date.now() + 7000, `expiry ${t}`);
    assert.ok(gw.logs.some((l) => l.event === 'tls_certificate_renewed' && l.name === 'site/app'));
  });

  it('a reload that adds a site issues its certificate while running; a removed site name stops handshaking', async () => {
    assert.equal((await handshake(httpsPort, 'new.test', ca.rootPem)).ok, false);
    const next = { ...config, sites: [...config.sites.slice(0, 1), { id: 'new', hosts: ['new.test'], upstream: { urls: [up.url] } }] };
    gw.write(next);
    assert.equal((await gw.gw.reload()).ok, true);
    await waitFor('certificate for the new site', async () => {
      const h = await handshake(httpsPort, 'new.test', ca.rootPem);
      h.socket.destroy();
      return h.ok ? true : null;
    });
    assert.equal((await httpsGet(httpsPort, { ca: ca.rootPem, servername: 'new.test' })).status, 200);
    const gone = await handshake(httpsPort, 'a.wild.test', ca.rootPem);
    assert.equal(gone.ok, false);
    assert.equal(gone.cert, null);
    gw.write(config);
    assert.equal((await gw.gw.reload()).ok, true);
    await waitFor('wildcard certificate again', async () => {
      const h = await handshake(httpsPort, 'a.wild.test', ca.rootPem);
      h.socket.destroy();
      return h.ok ? true : null;
    });
  });

  it('the HTTP listener answers 308 to the HTTPS listener, keeping path and query, with the security headers', async () => {
    const r = await request(`http://127.0.0.1:${port}/some/path?a=1&b=%20x`, { headers: { host: 'app.test:8080' } });
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, `https://app.test:${httpsPort}/some/path?a=1&b=%20x`);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(r.headers[k], v);
    assert.equal(r.headers['strict-transport-security'], undefined, 'a plain-HTTP answer carries no HSTS (RFC 6797 §7.2)');
    assert.ok(r.headers['x-request-id']);
    const post = await request(`http://127.0.0.1:${port}/form`, { method: 'POST', headers: { host: 'x.wild.test' }, body: 'a=1' });
    assert.equal(post.status, 308, '308 keeps the method');
    assert.equal(post.headers.location, `https://x.wild.test:${httpsPort}/form`);
    // A host no site serves is not bounced anywhere: closed with zero bytes (http.unknown_host: close).
    const other = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n');
    assert.equal(other.bytes.length, 0);
    assert.ok(other.closed);
    assert.equal(up.seen.filter((s) => s.url === '/form').length, 0, 'nothing is proxied over plain HTTP');
  });

  it('the redirect keeps the path exactly, a leading // included, and the Location is always absolute https://host/...', async () => {
    const cases: Array<[string, string]> = [
      ['//evil.example/x', '//evil.example/x'],
      ['//evil.example', '//evil.example'],
      ['/a//b/./c/%2e%2e/?q=//x', '/a//b/./c/%2e%2e/?q=//x'],
      ['http://app.test//evil.example/y?z', '//evil.example/y?z'],
    ];
    for (const [target, path] of cases) {
      const r = parseHead((await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n`)).bytes);
      assert.equal(r.status, 308, target);
      assert.equal(r.headers.location, `https://app.test:${httpsPort}${path}`, target);
      assert.equal(new URL(r.headers.location ?? "").host, `app.test:${httpsPort}`, 'never another host');
    }
  });
});

describe('TLS listener with certificate files swapped on disk', () => {
  let ca: TestCa;
  let up: Upstream;
  let gw: TestGateway;
  let certFile: string;
  let keyFile: string;
  before(async () => {
    ca = await createTestCa();
    up = await startUpstream();
    certFile = join(ca.dir, 'site.crt');
    keyFile = join(ca.dir, 'site.key');
    const c = await ca.issue({ name: 'files.test', lifetimeMs: 3_600_000 });
    writeFileSync(certFile, c.chainPem);
    writeFileSync(keyFile, c.keyPem, { mode: 0o600 });
    writeFileSync(join(ca.dir, 'admin.token'), 'tls-admin-token-0123456789abcdef0123\n', { mode: 0o600 });
    gw = await startGateway({
      listen: [{ address: '127.0.0.1:0', tls: { cert_file: certFile, key_file: keyFile } }],
      admin: { listen: '127.0.0.1:0', token_file: join(ca.dir, 'admin.token') },
      tls: { check_interval: '100ms' },
      sites: [{ id: 'app', hosts: ['files.test'], upstream: { urls: [up.url] } }],
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('serves the file certificate, refuses other names, and picks up a replaced pair without a restart', async () => {
    const r1 = await httpsGet(gw.port, { ca: ca.rootPem, servername: 'files.test' });
    assert.equal(r1.status, 200);
    assert.equal((await handshake(gw.port, 'other.test', ca.rootPem)).cert, null);
    const next = await ca.issue({ name: 'files.test', lifetimeMs: 7_200_000 });
    // Replace atomically, as a deploy tool would (write aside, rename over).
    writeFileSync(`${certFile}.new`, next.chainPem);
    writeFileSync(`${keyFile}.new`, next.keyPem, { mode: 0o600 });
    renameSync(`${keyFile}.new`, keyFile);
    renameSync(`${certFile}.new`, certFile);
    await waitFor('file reload', () => (gw.gw.tls.currentSerial(`file/${certFile}`) === next.serial ? true : null));
    const r2 = await httpsGet(gw.port, { ca: ca.rootPem, servername: 'files.test' });
    assert.equal(r2.serial, next.serial);
    assert.notEqual(r2.serial, r1.serial);
    // The admin API says what is presented (and never any key).
    const listed = await request(`${gw.adminUrl}/v1/tls/certificates`, { headers: { authorization: 'Bearer tls-admin-token-0123456789abcdef0123' } });
    assert.equal(listed.status, 200);
    const body = JSON.parse(listed.body) as { certificates: Array<{ name: string; serial: string; names: string[] }> };
    assert.deepEqual(body.certificates.map((c) => [c.name, c.serial, c.names]), [[`file/${certFile}`, next.serial, ['DNS:files.test']]]);
    assert.ok(!listed.body.includes('PRIVATE KEY'));
    assert.equal((await request(`${gw.adminUrl}/v1/tls/certificates`)).status, 401);
  });

  it('a replaced pair that does not load keeps the previous certificate serving and is counted', async () => {
    const before = gw.gw.tls.currentSerial(`file/${certFile}`);
    writeFileSync(certFile, '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n');
    await waitFor('reload failure', () => (gw.logs.some((l) => l.event === 'tls_certificate_reload_failed') ? true : null));
    const r = await httpsGet(gw.port, { ca: ca.rootPem, servername: 'files.test' });
    assert.equal(r.status, 200);
    assert.equal(r.serial, before);
    assert.match((await metric(gw, /^gatehouse_tls_certificate_renewal_failures_total\{name="file\//)) ?? '', / [1-9]\d*$/);
  });
});
