/**
 * Admin API authentication by client certificate (admin.tls + admin.client_certificates):
 * a real HTTPS admin listener on an ephemeral port, certificates issued by a real
 * internal CA (and by a second, foreign one), real TLS clients. Probes stay open without
 * a certificate; API routes accept an allowed certificate or the bearer token.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Issued } from '../pki/ca.js';
import { sleep, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { createTestCa, handshake, httpsGet, requestOn, type TestCa, type TlsReply } from '../testing/tls.js';

const TOKEN = 'the-admin-token-for-the-mtls-tests-0123';

function tokenFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-admin-mtls-'));
  const file = join(dir, 'admin.token');
  writeFileSync(file, `${TOKEN}\n`);
  chmodSync(file, 0o600);
  return file;
}

function adminPort(gw: TestGateway): number {
  return (gw.gw.addresses().admin as AddressInfo).port;
}

function code(r: TlsReply): string {
  return (JSON.parse(r.body) as { error: { code: string } }).error.code;
}

async function waitFor<T>(what: string, fn: () => T | null | Promise<T | null>, ms = 15000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('admin API over HTTPS with client certificates from the internal CA', () => {
  let ca: TestCa;
  let other: TestCa;
  let up: Upstream;
  let gw: TestGateway;
  let config: Record<string, unknown> & { admin: Record<string, unknown> };
  let alice: Issued;
  let bob: Issued;
  let mallory: Issued;
  let foreignAlice: Issued;
  let expiredAlice: Issued;
  let serverOnlyAlice: Issued;

  const get = (path: string, opts: { cert?: Issued; token?: string } = {}) =>
    httpsGet(adminPort(gw), {
      ca: ca.rootPem,
      servername: 'localhost',
      path,
      headers: opts.token !== undefined ? { Authorization: `Bearer ${opts.token}` } : {},
      cert: opts.cert?.chainPem,
      key: opts.cert?.keyPem,
    });
  const lastCall = () => gw.logs.filter((l) => l.event === 'admin_request').at(-1);
  /** The log line is written when the answer is done; the client may see the answer first. */
  const callLogged = (n: number) => waitFor('the admin_request line', () => (gw.logs.filter((l) => l.event === 'admin_request').length >= n ? lastCall() ?? null : null));
  const calls = () => gw.logs.filter((l) => l.event === 'admin_request').length;

  before(async () => {
    ca = await createTestCa();
    other = await createTestCa();
    up = await startUpstream();
    const hour = 3_600_000;
    alice = await ca.issue({ name: 'ops-alice', client: true, server: false, lifetimeMs: hour });
    bob = await ca.issue({ name: 'bob-laptop', uris: ['spiffe://corp.example/ops/bob'], client: true, server: false, lifetimeMs: hour });
    mallory = await ca.issue({ name: 'ops-mallory', client: true, server: false, lifetimeMs: hour });
    foreignAlice = await other.issue({ name: 'ops-alice', client: true, server: false, lifetimeMs: hour });
    expiredAlice = await ca.issue({ name: 'ops-alice', client: true, server: false, lifetimeMs: hour, now: new Date(Date.now() - 2 * hour) });
    serverOnlyAlice = await ca.issue({ name: 'ops-alice', client: false, server: true, lifetimeMs: hour });
    config = {
      listen: [{ address: '127.0.0.1:0' }],
      admin: {
        listen: '127.0.0.1:0',
        token_file: tokenFile(),
        tls: { internal_ca: true },
        client_certificates: { allow: ['cn:ops-alice', 'uri:spiffe://corp.example/ops/bob'] },
      },
      // 10 s certificates: the admin certificate is renewed (at ~6.7 s) while the tests run; shorter
      // ones expire before a renewal on a loaded machine (a client then sees CERT_HAS_EXPIRED).
      ca: { dir: ca.caDir, password_file: ca.passwordFile, lifetime: '10s' },
      tls: { check_interval: '200ms', expiry_warning: '1s' },
      sites: [{ id: 'app', hosts: ['127.0.0.1'], upstream: { urls: [up.url] } }],
    };
    gw = await startGateway(config);
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('an allowed client certificate calls an admin API route (200); the log line names it as the principal', async () => {
    const r = await get('/v1/tls/certificates', { cert: alice });
    assert.equal(r.status, 200, r.body);
    const names = (JSON.parse(r.body) as { certificates: Array<{ name: string }> }).certificates.map((c) => c.name);
    assert.ok(names.includes('admin'), `the admin certificate is listed: ${names.join(', ')}`);
    const line = await callLogged(1);
    assert.equal(line.auth, 'client_certificate');
    assert.equal(line.principal, 'cn:ops-alice');
    assert.equal(line.cert_subject, 'CN=ops-alice');
    assert.equal(line.cert_serial, alice.serial);
    assert.equal(line.status, 200);
    assert.equal(line.path, '/v1/tls/certificates');
    // An identity from a URI name (a SPIFFE id) is matched as well.
    const n = calls();
    assert.equal((await get('/v1/tls/certificates', { cert: bob })).status, 200);
    assert.equal((await callLogged(n + 1)).principal, 'uri:spiffe://corp.example/ops/bob');
  });

  it('no certificate and no token → 401 admin_unauthorized; /healthz, /readyz and /metrics need neither', async () => {
    const r = await get('/v1/tls/certificates');
    assert.equal(r.status, 401);
    assert.equal(code(r), 'admin_unauthorized');
    assert.match(String(r.headers['www-authenticate']), /^Bearer realm="gatehouse-admin"/, 'the token is the scheme an HTTP challenge can name');
    for (const path of ['/healthz', '/readyz', '/metrics']) assert.equal((await get(path)).status, 200, path);
  });

  it('a certificate from another CA, an expired one, or one not issued for client use → 401, with the same answer for each', async () => {
    const bodies = new Set<string>();
    const causes: string[] = [];
    for (const cert of [foreignAlice, expiredAlice, serverOnlyAlice]) {
      const n = calls();
      const r = await get('/v1/tls/certificates', { cert });
      assert.equal(r.status, 401);
      assert.equal(code(r), 'admin_unauthorized');
      bodies.add(r.body);
      const line = await callLogged(n + 1);
      assert.equal(line.principal, null);
      assert.equal(line.level, 'warn');
      causes.push(`${String(line.cause)}/${String(line.tls_error)}`);
    }
    assert.equal(bodies.size, 1, 'the client never learns which check failed');
    // The log carries the cause.
    assert.deepEqual(causes, ['certificate_not_verified/UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'certificate_not_verified/CERT_HAS_EXPIRED', 'certificate_not_verified/INVALID_PURPOSE']);
  });

  it('a certificate from the trusted CA whose identity is not allowed → 403 admin_forbidden', async () => {
    const n = calls();
    const r = await get('/v1/tls/certificates', { cert: mallory });
    assert.equal(r.status, 403);
    assert.equal(code(r), 'admin_forbidden');
    assert.equal(r.headers['www-authenticate'], undefined);
    const line = await callLogged(n + 1);
    assert.equal(line.code, 'admin_forbidden');
    assert.equal(line.principal, null);
    assert.equal(line.cert_subject, 'CN=ops-mallory');
  });

  it('the bearer token still works alongside client certificates, and is never logged', async () => {
    let n = calls();
    const ok = await get('/v1/tls/certificates', { token: TOKEN });
    assert.equal(ok.status, 200);
    const line = await callLogged(n + 1);
    assert.equal(line.auth, 'token');
    assert.equal(line.principal, 'token');
    // Either credential suffices: a valid token with a certificate that is not allowed, a wrong token with one that is.
    assert.equal((await get('/v1/tls/certificates', { token: TOKEN, cert: mallory })).status, 200);
    assert.equal((await get('/v1/tls/certificates', { token: 'wrong', cert: alice })).status, 200);
    n = calls();
    const wrong = await get('/v1/tls/certificates', { token: 'wrong' });
    assert.equal(wrong.status, 401);
    assert.equal((await callLogged(n + 1)).cause, 'token_mismatch');
    assert.ok(!JSON.stringify(gw.logs).includes(TOKEN), 'the token never reaches the log');
  });

  it('the admin certificate is issued by the internal CA for the loopback names and renewed while running', async () => {
    const first = await handshake(adminPort(gw), 'localhost', ca.rootPem, { cert: alice.chainPem, key: alice.keyPem });
    assert.equal(first.ok, true, first.error ?? '');
    const oldSerial = first.cert?.serialNumber.toUpperCase() ?? '';
    assert.equal(oldSerial, gw.gw.tls.currentSerial('admin'));
    assert.match(first.cert?.subjectaltname ?? '', /DNS:localhost/);
    assert.match(first.cert?.subjectaltname ?? '', /IP Address:127\.0\.0\.1/);
    assert.equal((await requestOn(first.socket, 'localhost', '/v1/tls/certificates')).status, 200);
    // A request on the old connection every 500 ms while waiting: it must keep working, and
    // it keeps the connection from reaching the admin server's keep-alive timeout (5 s).
    const newSerial = await waitFor('admin certificate renewal', async () => {
      assert.equal((await requestOn(first.socket, 'localhost', '/v1/tls/certificates')).status, 200);
      const s = gw.gw.tls.currentSerial('admin');
      if (s !== null && s !== oldSerial) return s;
      await sleep(450);
      return null;
    }, 30_000);
    // The connection made with the old certificate keeps working; a new one sees the new certificate.
    assert.equal((await requestOn(first.socket, 'localhost', '/v1/tls/certificates')).status, 200);
    first.socket.destroy();
    const fresh = await get('/v1/tls/certificates', { cert: alice });
    assert.equal(fresh.status, 200);
    assert.equal(fresh.serial, newSerial);
  });

  it('reload: the allow list applies to the next request on an open connection; a new ca_file replaces the trust pool, also for open connections; admin.tls needs a restart', async () => {
    const admin = config.admin as { client_certificates: { allow: string[] } };
    const connect = async () => {
      const h = await handshake(adminPort(gw), 'localhost', ca.rootPem, { cert: alice.chainPem, key: alice.keyPem });
      assert.equal(h.ok, true, h.error ?? '');
      assert.equal((await requestOn(h.socket, 'localhost', '/v1/tls/certificates')).status, 200);
      return h.socket;
    };
    // A refusal closes its connection (the admin listener answers errors with Connection: close), so one refusal per connection.
    const first = await connect();
    gw.write({ ...config, admin: { ...config.admin, client_certificates: { allow: ['uri:spiffe://corp.example/ops/bob'] } } });
    assert.equal((await gw.gw.reload()).ok, true);
    assert.equal((await requestOn(first, 'localhost', '/v1/tls/certificates')).status, 403, 'alice was removed: refused on the same connection');
    first.destroy();
    assert.equal((await get('/v1/tls/certificates', { cert: bob })).status, 200);

    gw.write(config);
    assert.equal((await gw.gw.reload()).ok, true);
    const second = await connect();
    const bundle = join(other.dir, 'admin-clients.pem');
    writeFileSync(bundle, other.rootPem);
    gw.write({ ...config, admin: { ...config.admin, client_certificates: { ...admin.client_certificates, ca_file: bundle } } });
    assert.equal((await gw.gw.reload()).ok, true);
    // The TLS material of a reload is prepared after reload() answers (tls.update).
    await waitFor('the new trust pool', () => (gw.logs.some((l) => l.event === 'tls_admin_trust_reloaded') ? true : null));
    assert.equal((await get('/v1/tls/certificates', { cert: foreignAlice })).status, 200, 'the other CA is trusted now');
    assert.equal((await get('/v1/tls/certificates', { cert: alice })).status, 401, 'the internal root no longer is');
    const n = calls();
    assert.equal((await requestOn(second, 'localhost', '/v1/tls/certificates')).status, 401, 'nor on a connection verified against the old pool');
    assert.equal((await callLogged(n + 1)).cause, 'trust_pool_replaced');
    second.destroy();

    const plain = { ...config.admin } as Record<string, unknown>;
    delete plain.tls;
    delete plain.client_certificates;
    gw.write({ ...config, admin: plain });
    const refused = await gw.gw.reload();
    assert.equal(refused.ok, false);
    assert.match(refused.error ?? '', /admin\.tls: admin\.tls changes only on restart/);
    assert.match(refused.error ?? '', /admin\.client_certificates: turning admin\.client_certificates on or off takes a restart/);
    gw.write(config);
    assert.equal((await gw.gw.reload()).ok, true);
    await waitFor('the internal root again', async () => ((await get('/v1/tls/certificates', { cert: alice })).status === 200 ? true : null));
  });
});

describe('admin API over HTTPS: certificate files, a ca_file trust pool, and no authentication at all', () => {
  let ca: TestCa;
  let up: Upstream;
  let files: TestGateway;
  let none: TestGateway;
  let adminCert: Issued;
  let alice: Issued;

  before(async () => {
    ca = await createTestCa();
    up = await startUpstream();
    adminCert = await ca.issue({ name: 'admin.internal', ips: ['127.0.0.1'], lifetimeMs: 3_600_000 });
    alice = await ca.issue({ name: 'ops-alice', client: true, server: false, lifetimeMs: 3_600_000 });
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-admin-files-'));
    const crt = join(dir, 'admin.crt');
    const key = join(dir, 'admin.key');
    const roots = join(dir, 'clients.pem');
    writeFileSync(crt, adminCert.chainPem);
    writeFileSync(key, adminCert.keyPem, { mode: 0o600 });
    writeFileSync(roots, ca.rootPem);
    const sites = [{ id: 'app', hosts: ['127.0.0.1'], upstream: { urls: [up.url] } }];
    // No `ca` block: the certificate comes from files and the trust pool from ca_file.
    files = await startGateway({ listen: [{ address: '127.0.0.1:0' }], admin: { listen: '127.0.0.1:0', tls: { cert_file: crt, key_file: key }, client_certificates: { ca_file: roots, allow: ['dns:OPS-ALICE'] } }, sites });
    none = await startGateway({ listen: [{ address: '127.0.0.1:0' }], admin: { listen: '127.0.0.1:0', tls: { cert_file: crt, key_file: key } }, sites });
  });
  after(async () => {
    await files.close();
    await none.close();
    await up.close();
  });

  it('serves the certificate from the files and accepts a client certificate chained to ca_file (DNS names compare case-insensitively)', async () => {
    const r = await httpsGet(adminPort(files), { ca: ca.rootPem, servername: 'admin.internal', path: '/v1/tls/certificates', cert: alice.chainPem, key: alice.keyPem });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.serial, adminCert.serial);
    const noCert = await httpsGet(adminPort(files), { ca: ca.rootPem, servername: 'admin.internal', path: '/v1/tls/certificates' });
    assert.equal(noCert.status, 401);
    assert.equal(noCert.headers['www-authenticate'], undefined, 'no token configured: no Bearer challenge');
  });

  it('neither a token nor client certificates configured → 403 admin_auth_not_configured, whatever certificate is shown', async () => {
    const r = await httpsGet(adminPort(none), { ca: ca.rootPem, servername: 'admin.internal', path: '/v1/tls/certificates', cert: alice.chainPem, key: alice.keyPem });
    assert.equal(r.status, 403);
    assert.equal(code(r), 'admin_auth_not_configured');
    assert.equal((await httpsGet(adminPort(none), { ca: ca.rootPem, servername: 'admin.internal', path: '/healthz' })).status, 200);
  });
});
