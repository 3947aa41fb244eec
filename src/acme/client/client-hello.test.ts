/** The ClientHello reader: a real hello from node's TLS client, and any bytes (truncated, corrupted) never throw. */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { connect } from 'node:tls';
import fc from 'fast-check';
import { parseClientHello } from './client-hello.js';

async function captureHello(opts: { servername?: string; alpn?: string[] }): Promise<Buffer> {
  let got: (b: Buffer) => void = () => undefined;
  const bytes = new Promise<Buffer>((ok) => (got = ok));
  const server = createServer((s: Socket) => {
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
        got(buf);
        s.destroy();
      }
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const c = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: opts.servername, ALPNProtocols: opts.alpn, rejectUnauthorized: false });
  c.on('error', () => undefined);
  const b = await bytes;
  c.destroy();
  server.close();
  return b;
}

describe('ClientHello reader', () => {
  it('reads SNI and ALPN from a real hello; without them, none', async () => {
    const hello = await captureHello({ servername: 'app.acme.test', alpn: ['acme-tls/1'] });
    assert.deepEqual(parseClientHello(hello), { serverName: 'app.acme.test', alpn: ['acme-tls/1'] });
    const two = await captureHello({ servername: 'x.test', alpn: ['h2', 'http/1.1'] });
    assert.deepEqual(parseClientHello(two), { serverName: 'x.test', alpn: ['h2', 'http/1.1'] });
    const none = await captureHello({});
    assert.deepEqual(parseClientHello(none), { serverName: null, alpn: [] });
    for (let n = 0; n < hello.length; n++) assert.equal(parseClientHello(hello.subarray(0, n)), 'more', `a prefix of ${n} bytes asks for more`);
  });

  it('never throws on any bytes, and says null for what is not a TLS handshake', async () => {
    assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')), null);
    const hello = await captureHello({ servername: 'a.test', alpn: ['acme-tls/1'] });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(), fc.nat(255), (bytes, pos, val) => {
        parseClientHello(Buffer.from(bytes));
        const m = Buffer.from(hello);
        m[pos % m.length] = val;
        const r = parseClientHello(m);
        assert.ok(r === null || r === 'more' || (typeof r === 'object' && Array.isArray(r.alpn)));
      }),
      { numRuns: 2000 },
    );
  });
});
