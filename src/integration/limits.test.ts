/**
 * Request limits and hostile clients against a real gateway and a real upstream:
 * oversize headers, too many headers, oversize bodies (declared and streamed), malformed
 * HTTP, slow clients (headers and body), unknown hosts and missing Host. Every answer the
 * gateway makes itself must have the one error shape and the security headers, and the
 * gateway must keep serving afterwards.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { baseConfig, parseHead, rawExchange, request, SECURITY_HEADERS, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { assertErrorAnswer, until } from '../testing/assert.js';

const LIMIT = 64 * 1024;
const CHUNK = 16 * 1024;

/** A raw client connection that records what the server sends and whether it closed. */
interface RawConn {
  readonly sock: Socket;
  bytes(): Buffer;
  readonly state: { closed: boolean; error: string | null };
  write(data: string | Buffer): Promise<void>;
}

function openRaw(port: number): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const state = { closed: false, error: null as string | null };
    const sock = connect(port, '127.0.0.1');
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', () => (state.closed = true));
    sock.on('close', () => (state.closed = true));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      state.error = e.code ?? e.message;
      state.closed = true;
    });
    sock.once('connect', () =>
      resolve({
        sock,
        state,
        bytes: () => Buffer.concat(chunks),
        // Resolves even when the write fails (the server may have closed on us: that is the point).
        write: (data) => new Promise<void>((ok) => (sock.destroyed ? ok() : sock.write(data, () => ok()))),
      }),
    );
    sock.once('error', reject);
  });
}

interface BodyRecord {
  bytes: number;
  ended: boolean;
}

describe('limits: headers, bodies, malformed and slow clients', () => {
  let up: Upstream;
  let gw: TestGateway;
  /** Body bytes the upstream received, by request path. */
  const bodies = new Map<string, BodyRecord>();
  const openSockets: Socket[] = [];
  const seenPath = (path: string) => up.seen.filter((s) => s.url === path).length;

  before(async () => {
    up = await startUpstream((req, res) => {
      const rec: BodyRecord = { bytes: 0, ended: false };
      bodies.set(req.url ?? '', rec);
      req.on('data', (c: Buffer) => (rec.bytes += c.length));
      req.on('error', () => undefined);
      req.on('end', () => {
        rec.ended = true;
        const body = JSON.stringify({ url: req.url, bytes: rec.bytes });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    gw = await startGateway(
      baseConfig(up.url, { max_body_bytes: '64KiB' }, { http: { max_header_bytes: '2KiB', max_headers: 20, header_timeout: '1s', body_idle_timeout: '1s' } }),
    );
  });
  after(async () => {
    for (const s of openSockets) s.destroy();
    await gw.close();
    await up.close();
  });

  it('answers header bytes over http.max_header_bytes with 431 headers_too_large, security headers and a request id', async () => {
    const r = await rawExchange(gw.port, `GET /big-headers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(4096)}\r\n\r\n`, 5000);
    assert.equal(r.closed, true, 'the connection is closed after the answer');
    const h = parseHead(r.bytes);
    assertErrorAnswer(h.status, h.headers, h.body, 431, 'headers_too_large');
    assert.equal(h.headers['connection'], 'close');
    assert.equal(seenPath('/big-headers'), 0, 'the upstream never saw the request');
  });

  it('answers more headers than http.max_headers with 431 headers_too_large', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 30; i++) headers[`X-H${i}`] = 'v';
    const r = await request(`${gw.url}/many-headers`, { headers });
    assertErrorAnswer(r.status, r.headers, r.body, 431, 'headers_too_large');
    assert.equal(seenPath('/many-headers'), 0, 'the upstream never saw the request');
    // Just under the limit passes (Host + Connection + 15 = 17 <= 20).
    const ok: Record<string, string> = {};
    for (let i = 0; i < 15; i++) ok[`X-H${i}`] = 'v';
    const r2 = await request(`${gw.url}/some-headers`, { headers: ok });
    assert.equal(r2.status, 200);
  });

  it('answers a declared Content-Length over max_body_bytes with 413 body_too_large before reading it; the upstream never sees it', async () => {
    // Only the head is sent: the gateway must answer without waiting for the body.
    const r = await rawExchange(gw.port, `POST /declared-big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`, 5000);
    assert.equal(r.closed, true, 'the connection is closed (the unread body is not consumed)');
    const h = parseHead(r.bytes);
    assertErrorAnswer(h.status, h.headers, h.body, 413, 'body_too_large');
    assert.equal(h.headers['connection'], 'close');
    assert.equal(seenPath('/declared-big'), 0, 'the upstream never saw the request');
  });

  it('forwards a body of exactly max_body_bytes intact (declared length and chunked)', async () => {
    const ok = await request(`${gw.url}/declared-ok`, { method: 'POST', body: Buffer.alloc(LIMIT, 1), headers: { 'Content-Length': String(LIMIT) } });
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.body), { url: '/declared-ok', bytes: LIMIT });
    // request() without a length sends Transfer-Encoding: chunked.
    const chunked = await request(`${gw.url}/chunked-ok`, { method: 'POST', body: Buffer.alloc(LIMIT, 1) });
    assert.equal(chunked.status, 200);
    assert.deepEqual(JSON.parse(chunked.body), { url: '/chunked-ok', bytes: LIMIT });
  });

  it('answers a chunked body that grows past max_body_bytes with 413; the upstream gets at most limit + one chunk and never the end', async () => {
    const c = await openRaw(gw.port);
    openSockets.push(c.sock);
    await c.write('POST /chunked-big HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n');
    const payload = Buffer.alloc(CHUNK, 0x61);
    let sent = 0;
    const answered = () => c.state.closed || c.bytes().length > 0;
    // One chunk at a time, each forwarded before the next is written, so the gateway sees
    // the client's chunk boundaries.
    while (!answered() && sent <= LIMIT + 4 * CHUNK) {
      await c.write(Buffer.concat([Buffer.from(`${CHUNK.toString(16)}\r\n`), payload, Buffer.from('\r\n')]));
      sent += CHUNK;
      await until(() => answered() || (bodies.get('/chunked-big')?.bytes ?? 0) >= sent, 5000);
    }
    assert.ok(await until(() => c.state.closed, 5000), 'the gateway closes the connection');
    const rec = bodies.get('/chunked-big');
    assert.ok(rec !== undefined, 'the upstream saw the start of the request');
    assert.ok(rec.bytes <= LIMIT + CHUNK, `upstream got ${rec.bytes} bytes, limit ${LIMIT} + one chunk ${CHUNK}`);
    assert.equal(rec.ended, false, 'the upstream never saw the end of the body');
    const h = parseHead(c.bytes());
    assertErrorAnswer(h.status, h.headers, h.body, 413, 'body_too_large');
  });

  it('answers malformed HTTP with 400 bad_request and the security headers, and keeps serving', async () => {
    const r = await rawExchange(gw.port, 'GET /malformed HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 5000);
    assert.equal(r.closed, true);
    const h = parseHead(r.bytes);
    assertErrorAnswer(h.status, h.headers, h.body, 400, 'bad_request');

    // A TLS ClientHello start on the plain-HTTP port.
    const tls = await rawExchange(gw.port, Buffer.from([0x16, 0x03, 0x01]), 5000);
    assert.equal(tls.closed, true);
    const t = parseHead(tls.bytes);
    assertErrorAnswer(t.status, t.headers, t.body, 400, 'bad_request');

    assert.equal(seenPath('/malformed'), 0);
    const ok = await request(`${gw.url}/after-malformed`);
    assert.equal(ok.status, 200);
  });

  it('closes a connection that never finishes its headers (slowloris) within a few seconds, with a 408 if anything', async () => {
    const c = await openRaw(gw.port);
    openSockets.push(c.sock);
    await c.write('GET /slowloris HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    assert.ok(await until(() => c.state.closed, 8000, 20), 'closed within 8 s with header_timeout 1s');
    const bytes = c.bytes();
    if (bytes.length > 0) {
      const h = parseHead(bytes);
      assertErrorAnswer(h.status, h.headers, h.body, 408, 'request_timeout');
    }
    assert.equal(seenPath('/slowloris'), 0);
  });

  it('closes a connection whose body stalls (body_idle_timeout) within a few seconds, with a 408 if anything', async () => {
    const c = await openRaw(gw.port);
    openSockets.push(c.sock);
    await c.write(`POST /slow-body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n${'x'.repeat(10)}`);
    assert.ok(await until(() => c.state.closed, 8000, 20), 'closed within 8 s with body_idle_timeout 1s');
    const bytes = c.bytes();
    assert.ok(bytes.length > 0, 'a 408 is written before closing (nothing was sent yet, so a status is still possible)');
    const h = parseHead(bytes);
    assertErrorAnswer(h.status, h.headers, h.body, 408, 'request_timeout');
    const rec = bodies.get('/slow-body');
    assert.equal(rec?.ended ?? false, false, 'the upstream never saw a complete body');
  });

  it('closes a request for a Host no site serves with zero bytes (http.unknown_host: close); the upstream sees nothing', async () => {
    const r = await rawExchange(gw.port, 'GET /misdirected HTTP/1.1\r\nHost: nobody.example\r\n\r\n');
    assert.equal(r.bytes.length, 0);
    assert.ok(r.closed);
    assert.equal(seenPath('/misdirected'), 0);
    assert.ok(await until(() => gw.logs.some((l) => l.msg === 'request' && l.code === 'misdirected_request' && l.status === 0), 2000));
  });


  it('answers an HTTP/1.0 request without Host with 400 missing_host', async () => {
    const r = await rawExchange(gw.port, 'GET /no-host HTTP/1.0\r\n\r\n', 5000);
    assert.equal(r.closed, true);
    const h = parseHead(r.bytes);
    assertErrorAnswer(h.status, h.headers, h.body, 400, 'missing_host');
    assert.equal(seenPath('/no-host'), 0);
  });

  it('still serves a normal request after all of the above', async () => {
    const r = await request(`${gw.url}/finally`);
    assert.equal(r.status, 200);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(r.headers[k], v);
    assert.deepEqual(JSON.parse(r.body), { url: '/finally', bytes: 0 });
  });

  it('still forwards a request body after all of the above', async () => {
    const r = await request(`${gw.url}/finally-body`, { method: 'POST', body: 'hello', headers: { 'Content-Length': '5' } });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { url: '/finally-body', bytes: 5 });
  });
});
