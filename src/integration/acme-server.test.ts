/**
 * The ACME server end to end with a request-level client (src/testing/acme.ts): the
 * whole flow on a real gateway with the internal CA, then every refusal the issue lists —
 * each with its RFC 8555 error type and no certificate issued.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { accountKey, acmeHttp, makeCsr, startHttp01Responder, TestAcmeClient } from '../testing/acme.js';
import { baseConfig, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { createTestCa, type TestCa } from '../testing/tls.js';

const PREFIX = 'urn:ietf:params:acme:error:';
const HOST_A = '127.0.0.21';

function acmeConfig(ca: TestCa, upstream: Upstream, httpPort: number, acme: Record<string, unknown> = {}): Record<string, unknown> {
  const state = mkdtempSync(join(tmpdir(), 'gatehouse-acme-'));
  return baseConfig(upstream.url, {}, {
    ca: { dir: ca.caDir, password_file: ca.passwordFile },
    state: { dir: state },
    acme_server: {
      listen: '127.0.0.1:0',
      names: ['127.0.0.1'],
      identifiers: { dns_suffixes: ['.acme.test'], ip_ranges: ['127.0.0.20/30'] },
      challenges: { http_port: httpPort, tls_alpn_port: 1, timeout: '3s', resolve: { 'a.acme.test': HOST_A, 'b.acme.test': HOST_A, 'bad.acme.test': HOST_A }, static_only: true },
      ...acme,
    },
  });
}

function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** openssl verify of leaf + intermediate against the root only. */
function verifyChain(ca: TestCa, chainPem: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-acme-verify-'));
  const [leaf, inter] = chainPem.split(/(?<=-----END CERTIFICATE-----\n)/);
  writeFileSync(join(dir, 'root.pem'), ca.rootPem);
  writeFileSync(join(dir, 'inter.pem'), inter ?? '');
  writeFileSync(join(dir, 'leaf.pem'), leaf ?? '');
  assert.match(openssl(['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'inter.pem'), join(dir, 'leaf.pem')]), /leaf\.pem: OK/);
}

async function issued(gw: TestGateway): Promise<number> {
  const m = await gw.gw.metrics.registry.getSingleMetricAsString('gatehouse_acme_certificates_issued_total');
  return [...m.matchAll(/^gatehouse_acme_certificates_issued_total\{[^}]*\} (\d+)/gm)].reduce((s, x) => s + Number(x[1]), 0);
}

describe('ACME server', () => {
  let ca: TestCa;
  let upstream: Upstream;
  let responder: Awaited<ReturnType<typeof startHttp01Responder>>;
  let gw: TestGateway;
  let dirUrl: string;

  before(async () => {
    ca = await createTestCa();
    upstream = await startUpstream();
    responder = await startHttp01Responder(HOST_A);
    gw = await startGateway(acmeConfig(ca, upstream, responder.port));
    dirUrl = (gw.gw.acme as NonNullable<typeof gw.gw.acme>).directoryUrl;
  });
  after(async () => {
    await gw.close();
    await responder.close();
    await upstream.close();
  });

  async function client(): Promise<TestAcmeClient> {
    const c = await new TestAcmeClient(dirUrl, ca.rootPem, await accountKey()).init();
    const r = await c.newAccount({ termsOfServiceAgreed: true, contact: ['mailto:ops@acme.test'] });
    assert.equal(r.status, 201, r.body);
    return c;
  }

  /** newOrder → http-01 → ready; returns the order URL and body. */
  async function readyOrder(c: TestAcmeClient, names: string[]): Promise<{ url: string; order: Record<string, unknown> }> {
    const r = await c.newOrder(names.map((value) => ({ type: /^\d/.test(value) ? 'ip' : 'dns', value })));
    assert.equal(r.status, 201, r.body);
    const url = r.headers.location as string;
    for (const az of r.json().authorizations as string[]) {
      const a = (await c.post(az, '')).json();
      if (a.status === 'valid') continue;
      const ch = (a.challenges as Array<Record<string, string>>).find((x) => x.type === 'http-01') as Record<string, string>;
      responder.tokens.set(ch.token as string, `${ch.token}.${await c.thumbprint()}`);
      const resp = await c.post(ch.url as string, {});
      assert.equal(resp.status, 200, resp.body);
      assert.match(String(resp.headers.link), new RegExp(`<${az}>;rel="up"`));
      assert.equal((await c.poll(az)).status, 'valid');
    }
    const order = await c.poll(url);
    assert.equal(order.status, 'ready', JSON.stringify(order));
    return { url, order };
  }

  it('directory, nonces and the whole flow: account, order, http-01, finalize, download, revoke, CRL', async () => {
    const d = await acmeHttp(dirUrl, ca.rootPem);
    assert.equal(d.status, 200);
    for (const k of ['newNonce', 'newAccount', 'newOrder', 'revokeCert', 'keyChange']) assert.match(String(d.json()[k]), /^https:\/\/127\.0\.0\.1:\d+\/acme\//);
    const head = await acmeHttp(d.json().newNonce as string, ca.rootPem, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.match(String(head.headers['replay-nonce']), /^[A-Za-z0-9_-]{22}$/);
    assert.equal(head.headers['cache-control'], 'no-store');
    assert.equal((await acmeHttp(d.json().newNonce as string, ca.rootPem)).status, 204);

    const c = await client();
    const before = await issued(gw);
    const pending = await c.newOrder([{ type: 'dns', value: 'a.acme.test' }, { type: 'ip', value: '127.0.0.21' }]);
    assert.equal(pending.status, 201);
    assert.equal(pending.json().status, 'pending');
    assert.equal(pending.headers['retry-after'], '1');
    assert.match(String(pending.headers.link), /rel="index"/);
    const { url, order } = await readyOrder(c, ['a.acme.test', '127.0.0.21']);
    const csr = await makeCsr(['a.acme.test', '127.0.0.21']);
    const fin = await c.post(order.finalize as string, { csr: csr.b64 });
    assert.equal(fin.status, 200, fin.body);
    assert.equal(fin.json().status, 'valid');
    assert.equal(fin.headers.location, url);
    const cert = await c.post(fin.json().certificate as string, '');
    assert.equal(cert.status, 200);
    assert.equal(cert.headers['content-type'], 'application/pem-certificate-chain');
    assert.equal(cert.body.match(/BEGIN CERTIFICATE/g)?.length, 2, 'leaf + intermediate');
    verifyChain(ca, cert.body);
    const leaf = new X509Certificate(cert.body);
    assert.equal(leaf.subjectAltName, 'DNS:a.acme.test, IP Address:127.0.0.21');
    const lifetime = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
    assert.ok(lifetime > 24 * 3600_000 - 120_000 && lifetime <= 24 * 3600_000 + 61_000, `24h lifetime, got ${lifetime}`);
    assert.match(openssl(['x509', '-noout', '-ext', 'crlDistributionPoints'], cert.body), /URI:https:\/\/127\.0\.0\.1:\d+\/acme\/crl/);
    assert.equal(await issued(gw), before + 1);

    // A second order for the same names reuses the valid authorizations: ready at once.
    const again = await c.newOrder([{ type: 'dns', value: 'a.acme.test' }]);
    assert.equal(again.json().status, 'ready');

    // Revocation by the account, then the CRL lists the serial.
    const der = leaf.raw.toString('base64url');
    const rev = await c.post(c.dir.revokeCert as string, { certificate: der, reason: 4 });
    assert.equal(rev.status, 200, rev.body);
    const twice = await c.post(c.dir.revokeCert as string, { certificate: der });
    assert.equal(twice.json().type, `${PREFIX}alreadyRevoked`);
    const crlUrl = `${dirUrl.replace(/directory$/, 'crl')}`;
    const crl = await new Promise<Buffer>((ok, fail) => {
      import('node:https').then(({ get }) => get(crlUrl, { ca: ca.rootPem }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('end', () => ok(Buffer.concat(parts)));
      }).on('error', fail), fail);
    });
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-crl-'));
    writeFileSync(join(dir, 'crl.der'), crl);
    const text = openssl(['crl', '-inform', 'DER', '-in', join(dir, 'crl.der'), '-noout', '-text']);
    assert.match(text, new RegExp(`Serial Number: ${leaf.serialNumber}`, 'i'));
    assert.match(text, /Superseded/);
  });

  it('account: onlyReturnExisting, update, key rollover, deactivation; revocation by the certificate key', async () => {
    const c = await client();
    const kid = c.kid as string;
    const other = await new TestAcmeClient(dirUrl, ca.rootPem, await accountKey('EdDSA')).init();
    const none = await other.post(other.dir.newAccount as string, { onlyReturnExisting: true }, {}, other.key, true);
    assert.equal(none.json().type, `${PREFIX}accountDoesNotExist`);
    const found = await c.post(c.dir.newAccount as string, { onlyReturnExisting: true }, {}, c.key, true);
    assert.equal(found.status, 200);
    assert.equal(found.headers.location, kid);
    const upd = await c.post(kid, { contact: ['mailto:new@acme.test'] });
    assert.deepEqual(upd.json().contact, ['mailto:new@acme.test']);
    const badContact = await c.post(kid, { contact: ['tel:+1555'] });
    assert.equal(badContact.json().type, `${PREFIX}unsupportedContact`);

    // An order and certificate, then revoke it with the certificate's own key is not possible here (the CSR key is
    // the client's); revoke by a key whose JWS is the certificate key: make the CSR with a key we hold as a JWK.
    const { order } = await readyOrder(c, ['b.acme.test']);
    const certKey = await accountKey('ES256');
    const pub = await webcrypto.subtle.importKey('jwk', certKey.jwk as webcrypto.JsonWebKey, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=b.acme.test', keys: { publicKey: pub, privateKey: certKey.privateKey as webcrypto.CryptoKey }, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'b.acme.test' }])] });
    const fin = await c.post(order.finalize as string, { csr: Buffer.from(csr.rawData).toString('base64url') });
    assert.equal(fin.json().status, 'valid', fin.body);
    const pem = (await c.post(fin.json().certificate as string, '')).body;
    const der = new X509Certificate(pem).raw.toString('base64url');
    // Another account may not revoke it...
    const stranger = await client();
    const denied = await stranger.post(stranger.dir.revokeCert as string, { certificate: der });
    assert.equal(denied.json().type, `${PREFIX}unauthorized`);
    // ...the certificate key may (jwk in the header).
    const byKey = await stranger.post(stranger.dir.revokeCert as string, { certificate: der, reason: 1 }, {}, certKey, true);
    assert.equal(byKey.status, 200, byKey.body);

    // Key rollover: inner JWS signed by the new key.
    const newKey = await accountKey('ES384');
    const inner = JSON.parse(await c.jws(c.dir.keyChange as string, { account: kid, oldKey: c.key.jwk }, { nonce: undefined }, newKey, true)) as unknown;
    const kc = await c.post(c.dir.keyChange as string, inner);
    assert.equal(kc.status, 200, kc.body);
    const oldKey = c.key;
    c.key = newKey;
    assert.equal((await c.post(kid, '')).status, 200, 'the new key works');
    c.key = oldKey;
    assert.equal((await c.post(kid, '')).status, 400, 'the old key no longer does');
    c.key = newKey;
    const deact = await c.post(kid, { status: 'deactivated' });
    assert.equal(deact.json().status, 'deactivated');
    const after = await c.newOrder([{ type: 'dns', value: 'a.acme.test' }]);
    assert.equal(after.json().type, `${PREFIX}unauthorized`);
  });

  it('refuses: identifier outside the policy, wildcard, replayed nonce, url mismatch, bad algorithm, jwk and kid', async () => {
    const c = await client();
    const outside = await c.newOrder([{ type: 'dns', value: 'www.example.com' }]);
    assert.equal(outside.status, 400);
    assert.equal(outside.headers['content-type'], 'application/problem+json');
    assert.equal(outside.json().type, `${PREFIX}rejectedIdentifier`);
    assert.equal((outside.json().subproblems as unknown[]).length, 1);
    assert.equal((await c.newOrder([{ type: 'ip', value: '10.1.2.3' }])).json().type, `${PREFIX}rejectedIdentifier`);
    assert.equal((await c.newOrder([{ type: 'dns', value: '*.acme.test' }])).json().type, `${PREFIX}rejectedIdentifier`);

    const nonce = await c.nonce();
    const first = await c.post(c.kid as string, '', { nonce });
    assert.equal(first.status, 200);
    const replay = await c.post(c.kid as string, '', { nonce });
    assert.equal(replay.status, 400);
    assert.equal(replay.json().type, `${PREFIX}badNonce`);
    assert.match(String(replay.headers['replay-nonce']), /^[A-Za-z0-9_-]+$/, 'a fresh nonce comes with badNonce');
    assert.equal((await c.post(c.kid as string, '', { nonce: String(replay.headers['replay-nonce']) })).status, 200, 'and it works');

    const mismatch = await acmeHttp(c.dir.newOrder as string, ca.rootPem, { method: 'POST', body: await c.jws(c.dir.revokeCert as string, { identifiers: [{ type: 'dns', value: 'a.acme.test' }] }) });
    assert.equal(mismatch.status, 403);
    assert.equal(mismatch.json().type, `${PREFIX}unauthorized`);

    const hs = JSON.parse(await c.jws(c.kid as string, '')) as Record<string, string>;
    const hdr = JSON.parse(Buffer.from(hs.protected as string, 'base64url').toString()) as Record<string, unknown>;
    for (const alg of ['none', 'HS256', 'ES512']) {
      const forged = { ...hs, protected: Buffer.from(JSON.stringify({ ...hdr, alg })).toString('base64url') };
      const r = await acmeHttp(c.kid as string, ca.rootPem, { method: 'POST', body: JSON.stringify(forged) });
      assert.equal(r.json().type, `${PREFIX}badSignatureAlgorithm`, alg);
      assert.deepEqual(r.json().algorithms, ['ES256', 'ES384', 'RS256', 'EdDSA']);
    }
    const both = await c.post(c.kid as string, '', { jwk: c.key.jwk });
    assert.equal(both.json().type, `${PREFIX}malformed`);
    const wrongType = await acmeHttp(c.kid as string, ca.rootPem, { method: 'POST', body: await c.jws(c.kid as string, ''), contentType: 'application/json' });
    assert.equal(wrongType.status, 415);
    const huge = await acmeHttp(c.kid as string, ca.rootPem, { method: 'POST', body: 'x'.repeat(70_000) });
    assert.equal(huge.status, 413);
    assert.equal(huge.json().type, `${PREFIX}malformed`);
    const weakRsa = await new TestAcmeClient(dirUrl, ca.rootPem, await accountKey('RS256', { modulusLength: 1024 })).init();
    assert.equal((await weakRsa.newAccount()).json().type, `${PREFIX}badPublicKey`);
  });

  it('refuses CSRs with an unauthorized SAN or a weak key, and a failed challenge; no certificate is issued', async () => {
    const c = await client();
    const before = await issued(gw);
    const { order } = await readyOrder(c, ['a.acme.test']);
    const extra = await c.post(order.finalize as string, { csr: (await makeCsr(['a.acme.test', 'b.acme.test'])).b64 });
    assert.equal(extra.json().type, `${PREFIX}badCSR`);
    const weak = await c.post(order.finalize as string, { csr: (await makeCsr(['a.acme.test'], 'RSA-1024')).b64 });
    assert.equal(weak.json().type, `${PREFIX}badCSR`);
    const fewer = await c.post(order.finalize as string, { csr: (await makeCsr(['127.0.0.21'])).b64 });
    assert.equal(fewer.json().type, `${PREFIX}badCSR`);
    assert.equal(await issued(gw), before, 'nothing issued');

    // A challenge the responder answers wrongly: the authorization and the order become invalid.
    const r = await c.newOrder([{ type: 'dns', value: 'bad.acme.test' }]);
    const az = (r.json().authorizations as string[])[0] as string;
    const ch = ((await c.post(az, '')).json().challenges as Array<Record<string, string>>).find((x) => x.type === 'http-01') as Record<string, string>;
    responder.tokens.set(ch.token as string, 'not-the-key-authorization');
    await c.post(ch.url as string, {});
    const a = await c.poll(az);
    assert.equal(a.status, 'invalid');
    const failed = (a.challenges as Array<Record<string, unknown>>).find((x) => x.type === 'http-01') as Record<string, Record<string, string>>;
    assert.equal(failed.error?.type, `${PREFIX}incorrectResponse`);
    const o = await c.poll(r.headers.location as string);
    assert.equal(o.status, 'invalid');
    const fin = await c.post(r.json().finalize as string, { csr: (await makeCsr(['bad.acme.test'])).b64 });
    assert.equal(fin.json().type, `${PREFIX}orderNotReady`);
    assert.equal(await issued(gw), before, 'still nothing issued');
  });

  it('http-01 does not follow a redirect off the identifier', async () => {
    const c = await client();
    const redirector = createServer((_req, res) => res.writeHead(302, { location: 'http://127.0.0.22/elsewhere' }).end());
    // Takes over the responder's port on a different loopback address is not possible; answer on the same port by swapping handlers.
    const original = responder.server.listeners('request')[0] as (...a: unknown[]) => void;
    responder.server.removeAllListeners('request');
    responder.server.on('request', (req, res) => redirector.emit('request', req, res));
    try {
      const r = await c.newOrder([{ type: 'dns', value: 'b.acme.test' }]);
      const az = (r.json().authorizations as string[])[0] as string;
      const ch = ((await c.post(az, '')).json().challenges as Array<Record<string, string>>).find((x) => x.type === 'http-01') as Record<string, string>;
      await c.post(ch.url as string, {});
      const a = await c.poll(az);
      assert.equal(a.status, 'invalid');
      const e = ((a.challenges as Array<Record<string, unknown>>).find((x) => x.type === 'http-01') as Record<string, Record<string, string>>).error;
      assert.equal(e?.type, `${PREFIX}connection`);
      assert.match(String(e?.detail), /redirect/);
    } finally {
      responder.server.removeAllListeners('request');
      responder.server.on('request', original);
    }
  });
});

describe('ACME server account policy', () => {
  it('refuses accounts from a disallowed address, and without a valid External Account Binding', async () => {
    const ca = await createTestCa();
    const upstream = await startUpstream();
    const hmac = Buffer.alloc(32, 7);
    const keyFile = join(ca.dir, 'eab.key');
    writeFileSync(keyFile, hmac.toString('base64url'), { mode: 0o600 });
    const ipGw = await startGateway(acmeConfig(ca, upstream, 1, { accounts: { allow_ips: ['10.0.0.0/8'] } }));
    const eabGw = await startGateway(acmeConfig(ca, upstream, 1, { accounts: { eab_keys: [{ kid: 'team-a', file: keyFile }] } }));
    try {
      const c1 = await new TestAcmeClient((ipGw.gw.acme as NonNullable<typeof ipGw.gw.acme>).directoryUrl, ca.rootPem, await accountKey()).init();
      const r1 = await c1.newAccount();
      assert.equal(r1.status, 403);
      assert.equal(r1.json().type, `${PREFIX}unauthorized`);

      const c2 = await new TestAcmeClient((eabGw.gw.acme as NonNullable<typeof eabGw.gw.acme>).directoryUrl, ca.rootPem, await accountKey()).init();
      assert.equal((c2.dir as unknown as { meta: { externalAccountRequired: boolean } }).meta.externalAccountRequired, true);
      assert.equal((await c2.newAccount()).json().type, `${PREFIX}externalAccountRequired`);
      const wrong = await c2.newAccount({ externalAccountBinding: await c2.eab('team-a', Buffer.alloc(32, 8)) });
      assert.equal(wrong.json().type, `${PREFIX}unauthorized`);
      const unknown = await c2.newAccount({ externalAccountBinding: await c2.eab('team-b', hmac) });
      assert.equal(unknown.json().type, `${PREFIX}unauthorized`);
      const ok = await c2.newAccount({ externalAccountBinding: await c2.eab('team-a', hmac) });
      assert.equal(ok.status, 201, ok.body);
    } finally {
      await ipGw.close();
      await eabGw.close();
      await upstream.close();
    }
  });
});

