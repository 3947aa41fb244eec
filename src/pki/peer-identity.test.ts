import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createTestCa, type TestCa } from '../testing/tls.js';
import { peerIdentity, PeerIdentityError } from './peer-identity.js';

const der = (pem: string) => new X509Certificate(pem).raw;

/** A self-signed certificate with the given subject and extensions (shapes the internal CA never issues). */
async function selfSigned(name: string, extensions: x509.Extension[]): Promise<Uint8Array> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    keys,
    extensions,
  });
  return new Uint8Array(cert.rawData);
}

describe('peerIdentity', () => {
  let ca: TestCa;
  before(async () => {
    ca = await createTestCa();
  });

  it('names the subject CN, the DNS names (lowercase) and the URI names of a certificate', async () => {
    const c = await ca.issue({ name: 'ops-alice', dnsNames: ['Ops.Internal'], ips: ['10.0.0.1'], uris: ['spiffe://corp.example/ops/Alice'], client: true, server: false });
    const id = peerIdentity(der(c.certPem));
    assert.deepEqual(id.identities, ['cn:ops-alice', 'dns:ops-alice', 'dns:ops.internal', 'uri:spiffe://corp.example/ops/Alice']);
    assert.equal(id.clientAuth, true);
  });

  it('reports whether the extended key usage allows client authentication', async () => {
    const server = await ca.issue({ name: 'svc.internal', server: true, client: false });
    assert.equal(peerIdentity(der(server.certPem)).clientAuth, false);
    const both = await ca.issue({ name: 'svc.internal', server: true, client: true });
    assert.equal(peerIdentity(der(both.certPem)).clientAuth, true);
    const none = await selfSigned('CN=no-eku', []);
    assert.equal(peerIdentity(none).clientAuth, null, 'no extension: any usage');
  });

  it('a certificate with several CNs is known by its SANs only', async () => {
    const raw = await selfSigned('CN=ops-alice, CN=ops-bob', [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'alice.internal' }])]);
    assert.deepEqual(peerIdentity(raw).identities, ['dns:alice.internal']);
  });

  it('bytes that are not a certificate throw a coded error', () => {
    assert.throws(() => peerIdentity(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])), PeerIdentityError);
  });

  it('issueCertificate refuses a URI name that is not an absolute URI', async () => {
    await assert.rejects(ca.issue({ name: 'x', uris: ['not a uri'] }), /not an absolute URI/);
  });
});
