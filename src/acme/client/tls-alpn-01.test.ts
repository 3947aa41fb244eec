/**
 * The tls-alpn-01 responder in front of an HTTPS server while a challenge is pending: a
 * validation hello (ALPN exactly `acme-tls/1`) gets the challenge certificate, every other
 * client the server's own certificate and ALPN choice, on the same port.
 */
// @peculiar/x509 (ours and acme-client's) needs the Reflect polyfill loaded before it.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import acme from 'acme-client';
import { createTestCa } from '../../testing/tls.js';
import { generateKey } from './order.js';
import { TlsAlpnResponder } from './tls-alpn-01.js';

function hello(port: number, alpn: string[], ca?: string): Promise<TLSSocket> {
  return new Promise((ok, fail) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'site.test', ALPNProtocols: alpn, ...(ca ? { ca } : { rejectUnauthorized: false }) });
    s.once('secureConnect', () => ok(s));
    s.once('error', fail);
  });
}

describe('tls-alpn-01 responder', () => {
  it('answers validation hellos with the challenge certificate and hands every other hello to the listener', async () => {
    const ca = await createTestCa();
    const site = await ca.issue({ name: 'site.test', dnsNames: ['site.test'], ips: [], lifetimeMs: 3_600_000, server: true, client: false });
    const server = createServer({ cert: site.chainPem, key: site.keyPem, ALPNProtocols: ['h2', 'http/1.1'] }, (_req, res) => res.end('site'));
    const responder = new TlsAlpnResponder(5000);
    responder.attach(server);
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const port = (server.address() as AddressInfo).port;
    try {
      const keyAuthorization = 'token.thumbprint';
      const authz = { identifier: { type: 'dns', value: 'site.test' } } as unknown as Parameters<typeof acme.crypto.createAlpnCertificate>[0];
      const [keyPem, certPem] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, generateKey('ecdsa-p256'));
      responder.add('site.test', certPem.toString(), keyPem.toString());
      assert.equal(responder.pending, 1);

      const v = await hello(port, ['acme-tls/1']);
      assert.equal(v.alpnProtocol, 'acme-tls/1');
      const challenge = new X509Certificate(v.getPeerCertificate(true).raw);
      assert.ok(acme.crypto.isAlpnCertificateAuthorizationValid(challenge.toString(), keyAuthorization));
      assert.equal(createHash('sha256').update(keyAuthorization).digest('hex').length, 64);
      v.destroy();

      for (const alpn of [['h2', 'http/1.1'], ['http/1.1'], ['acme-tls/1', 'http/1.1']]) {
        const c = await hello(port, alpn, ca.rootPem);
        assert.equal(c.getPeerCertificate().serialNumber.toUpperCase(), site.serial, `ALPN ${alpn.join(',')} reaches the listener`);
        assert.equal(c.alpnProtocol, alpn[0] === 'acme-tls/1' ? 'http/1.1' : alpn[0]);
        c.destroy();
      }
      responder.remove('site.test');
      assert.equal(responder.pending, 0);
      // No challenge pending: nothing is intercepted; the listener, which speaks no acme-tls/1, refuses the protocol.
      await assert.rejects(hello(port, ['acme-tls/1'], ca.rootPem), { code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' });
    } finally {
      responder.close();
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});
