/** ARI (RFC 9773): the certificate id of the RFC's example, window parsing, the random pick, Retry-After bounds. */
// @peculiar/x509 (ours and acme-client's) needs the Reflect polyfill loaded before it.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { describe, it } from 'node:test';
import { AuthorityKeyIdentifierExtension, X509CertificateGenerator, cryptoProvider } from '@peculiar/x509';
import { ariCertId, ariRetryAfter, parseRenewalInfo, pickRenewalTime } from './ari.js';

cryptoProvider.set(webcrypto as unknown as Parameters<typeof cryptoProvider.set>[0]);

async function certWith(serialHex: string, akiHex: string | null): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await X509CertificateGenerator.createSelfSigned({
    serialNumber: serialHex,
    name: 'CN=ari.test',
    notBefore: new Date(),
    notAfter: new Date(Date.now() + 86_400_000),
    keys: keys as Parameters<typeof X509CertificateGenerator.createSelfSigned>[0]['keys'],
    signingAlgorithm: alg,
    extensions: akiHex ? [new AuthorityKeyIdentifierExtension(akiHex)] : [],
  });
  return cert.toString('pem');
}

describe('ARI (RFC 9773)', () => {
  it('computes the certificate id of the RFC 9773 §4.1 example', async () => {
    const pem = await certWith('0087654321', '69885b6b87464041e1b37b847ba0ae2cde01c8d4');
    assert.equal(ariCertId(pem), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });

  it('has no id for a certificate without an authority key identifier', async () => {
    assert.equal(ariCertId(await certWith('01', null)), null);
  });

  it('parses a suggested window and refuses anything else', () => {
    assert.deepEqual(parseRenewalInfo({ suggestedWindow: { start: '2025-01-02T04:00:00Z', end: '2025-01-03T04:00:00Z' }, explanationURL: 'https://ca.test/why' }), {
      start: Date.parse('2025-01-02T04:00:00Z'),
      end: Date.parse('2025-01-03T04:00:00Z'),
    });
    assert.equal(parseRenewalInfo({ suggestedWindow: { start: '2025-01-03T04:00:00Z', end: '2025-01-02T04:00:00Z' } }), null, 'end before start');
    assert.equal(parseRenewalInfo({ suggestedWindow: { start: 'soon' } }), null);
    assert.equal(parseRenewalInfo(null), null);
    assert.equal(parseRenewalInfo([]), null);
  });

  it('picks a time inside the window', () => {
    const w = { start: 1000, end: 2000 };
    assert.equal(pickRenewalTime(w, 0), 1000);
    assert.equal(pickRenewalTime(w, 0.5), 1500);
    assert.ok(pickRenewalTime(w, 0.999999) < 2000);
  });

  it('asks again after Retry-After (seconds or a date), between 1 minute and 24 hours, 6 hours without one', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(ariRetryAfter('3600', now), 3_600_000);
    assert.equal(ariRetryAfter('1', now), 60_000);
    assert.equal(ariRetryAfter('9999999', now), 86_400_000);
    assert.equal(ariRetryAfter('Wed, 01 Jan 2025 02:00:00 GMT', now), 7_200_000);
    assert.equal(ariRetryAfter(null, now), 6 * 3_600_000);
    assert.equal(ariRetryAfter('', now), 6 * 3_600_000);
  });
});
