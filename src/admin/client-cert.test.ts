/**
 * checkClientCertificate on a stand-in for a TLS socket (real certificates from a test
 * CA): the checks a live handshake cannot reach — a certificate that expired while its
 * connection stayed open, an extended key usage without clientAuth that TLS let through,
 * a replaced trust pool — and the order of the verdicts. The real handshakes are in
 * src/integration/admin-mtls.test.ts.
 */
import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { before, describe, it } from 'node:test';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { Issued } from '../pki/ca.js';
import { createTestCa, type TestCa } from '../testing/tls.js';
import { checkClientCertificate, compileAllowList, prepareClientCertificates, type ClientCertPolicy } from './client-cert.js';

/** What checkClientCertificate reads from a TLSSocket, and nothing else. */
function tlsSocket(opts: { cert?: X509Certificate; authorized?: boolean; error?: string }): TLSSocket {
  const s = Object.create(TLSSocket.prototype) as TLSSocket;
  Object.defineProperties(s, {
    authorized: { value: opts.authorized ?? true },
    authorizationError: { value: opts.error ?? null },
    getPeerX509Certificate: { value: () => opts.cert },
  });
  return s;
}

const x = (i: Issued) => new X509Certificate(i.certPem);

describe('checkClientCertificate', () => {
  let ca: TestCa;
  let alice: Issued;
  let mallory: Issued;
  let trusted = true;
  const policy: ClientCertPolicy = { allow: compileAllowList(['cn:ops-alice', 'dns:Ops.Internal']), trustedNow: () => trusted };
  const now = Date.now();
  before(async () => {
    await prepareClientCertificates();
    ca = await createTestCa();
    alice = await ca.issue({ name: 'ops-alice', client: true, server: false, lifetimeMs: 3_600_000 });
    mallory = await ca.issue({ name: 'ops-mallory', client: true, server: false, lifetimeMs: 3_600_000 });
  });

  it('an allowed identity is the principal; a verified one not in the list is forbidden', async () => {
    assert.deepEqual(checkClientCertificate(tlsSocket({ cert: x(alice) }), policy, now), { kind: 'allowed', principal: 'cn:ops-alice', subject: 'CN=ops-alice', serial: alice.serial });
    assert.deepEqual(checkClientCertificate(tlsSocket({ cert: x(mallory) }), policy, now), { kind: 'forbidden', subject: 'CN=ops-mallory', serial: mallory.serial });
    const byDns = await ca.issue({ name: 'laptop-17', dnsNames: ['ops.internal'], client: true, server: false });
    assert.equal(checkClientCertificate(tlsSocket({ cert: x(byDns) }), policy, now).kind, 'allowed', 'allow entries compare DNS names case-insensitively');
  });

  it('no certificate, or not a TLS connection: none', () => {
    assert.deepEqual(checkClientCertificate(tlsSocket({}), policy, now), { kind: 'none' });
    assert.deepEqual(checkClientCertificate(new Socket(), policy, now), { kind: 'none' });
  });

  it('a certificate TLS did not verify is rejected before anything else is looked at', () => {
    assert.deepEqual(checkClientCertificate(tlsSocket({ cert: x(alice), authorized: false, error: 'CERT_HAS_EXPIRED' }), policy, now), { kind: 'rejected', cause: 'certificate_not_verified', tlsError: 'CERT_HAS_EXPIRED' });
  });

  it('a connection verified against a trust pool that has since been replaced is rejected', () => {
    trusted = false;
    try {
      assert.deepEqual(checkClientCertificate(tlsSocket({ cert: x(alice) }), policy, now), { kind: 'rejected', cause: 'trust_pool_replaced' });
    } finally {
      trusted = true;
    }
  });

  it('a certificate that expired (or is not yet valid) while its connection stayed open is rejected', () => {
    const c = x(alice);
    assert.equal(checkClientCertificate(tlsSocket({ cert: c }), policy, Date.parse(c.validTo)).kind, 'rejected');
    assert.deepEqual(checkClientCertificate(tlsSocket({ cert: c }), policy, Date.parse(c.validTo) + 1000), { kind: 'rejected', cause: 'certificate_expired' });
    assert.deepEqual(checkClientCertificate(tlsSocket({ cert: c }), policy, Date.parse(c.validFrom) - 1000), { kind: 'rejected', cause: 'certificate_expired' });
  });

  it('an extended key usage without clientAuth is rejected even when TLS let it through', async () => {
    const serverOnly = await ca.issue({ name: 'ops-alice', client: false, server: true });
    assert.deepEqual(checkClientCertificate(tlsSocket({ cert: x(serverOnly) }), policy, now), { kind: 'rejected', cause: 'certificate_not_for_client_auth' });
    // No extended key usage at all: any usage, so client authentication too.
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const noEku = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '02', name: 'CN=ops-alice', notBefore: new Date(now - 60_000), notAfter: new Date(now + 60_000), signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, keys });
    assert.equal(checkClientCertificate(tlsSocket({ cert: new X509Certificate(Buffer.from(noEku.rawData)) }), policy, now).kind, 'allowed');
  });
});
