/**
 * Streaming through the proxy, end to end: large uploads and downloads are never
 * buffered (each side observes the other's first bytes while the rest is still being
 * produced), backpressure holds a fast upstream back for a slow client, and upstream
 * failures become the gateway's own 502/504 answers. Response headers that describe the
 * upstream connection or software never reach the client.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { baseConfig, parseHead, rawExchange, request, SECURITY_HEADERS, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { UUID, assertErrorAnswer, until } from '../testing/assert.js';

const MiB = 1024 * 1024;

/** Block `i` of a deterministic pseudo-random stream (1 MiB blocks). */
const BASE = createHash('sha256').update('gatehouse').digest();
function block(i: number, size = MiB): Buffer {
  const b = Buffer.alloc(size);
  for (let off = 0; off < size; off += 32) BASE.copy(b, off);
  b.writeUInt32BE(i, 0);
  b.writeUInt32BE(i * 2654435761 >>> 0, size - 4);
  return b;
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)))]).finally(() => clearTimeout(t));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('streaming: no buffering, backpressure, upstream failures, response headers', () => {
  let up: Upstream;
  let gw: TestGateway;
  let deadPort = 0;
  const held: ServerResponse[] = [];

  // Upload: what the upstream observed.
  const upload = { clientWritten: 0, writtenAtFirstChunk: -1, firstChunk: deferred(), bytes: 0, hash: createHash('sha256') };
  // SSE: the test releases the second event.
  const sseGo = deferred();
  // Download: upstream progress.
  const download = { written: 0, waitedForDrain: 0, hash: '' };
  const DOWNLOAD = 32 * MiB;

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    '/upload': (req, res) => {
      req.on('data', (c: Buffer) => {
        if (upload.writtenAtFirstChunk < 0) {
          upload.writtenAtFirstChunk = upload.clientWritten;
          upload.firstChunk.resolve();
        }
        upload.bytes += c.length;
        upload.hash.update(c);
      });
      req.on('end', () => {
        const body = JSON.stringify({ bytes: upload.bytes, sha256: upload.hash.digest('hex') });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    },
    '/sse': (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: one\n\n');
      void sseGo.promise.then(() => res.end('data: two\n\n'));
    },
    '/download': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': DOWNLOAD });
      const h = createHash('sha256');
      let i = 0;
      const pump = () => {
        while (download.written < DOWNLOAD) {
          const b = block(i++, 256 * 1024);
          h.update(b);
          download.written += b.length;
          if (!res.write(b)) {
            download.waitedForDrain++;
            res.once('drain', pump);
            return;
          }
        }
        download.hash = h.digest('hex');
        res.end();
      };
      pump();
    },
    '/never': (_req, res) => {
      held.push(res);
    },
    '/hop': (_req, res) => {
      res.writeHead(200, {
        Connection: 'x-secret',
        'X-Secret': '1',
        'Keep-Alive': 'timeout=77, max=999',
        'Transfer-Encoding': 'chunked',
        Server: 'upstream/1.0',
        'X-Powered-By': 'php/5.0',
        'X-Kept': 'yes',
      });
      res.end('hello');
    },
  };

  before(async () => {
    up = await startUpstream((req, res) => {
      const route = routes[req.url ?? ''];
      if (route) return route(req, res);
      res.writeHead(404, { 'content-type': 'text/plain', server: 'upstream/1.0', 'x-powered-by': 'express' });
      res.end('no route');
    });
    // A port nothing listens on.
    const tmp = createServer();
    await new Promise<void>((ok) => tmp.listen(0, '127.0.0.1', ok));
    deadPort = (tmp.address() as AddressInfo).port;
    await new Promise<void>((ok) => tmp.close(() => ok()));
    gw = await startGateway(
      baseConfig(up.url, {}, {
        sites: [
          { id: 'app', hosts: ['127.0.0.1', 'localhost'], upstream: { urls: [up.url] }, max_body_bytes: '128MiB' },
          { id: 'down', hosts: ['down.test'], upstream: { urls: [`http://127.0.0.1:${deadPort}`], connect_timeout: '2s' } },
          { id: 'slow', hosts: ['slow.test'], upstream: { urls: [up.url], response_timeout: '500ms' } },
        ],
      }),
    );
  });
  after(async () => {
    sseGo.resolve();
    for (const r of held) r.destroy();
    await gw.close();
    await up.close();
  });

  it('streams a 64 MiB upload: the upstream sees the first chunk before the client has written the rest, and gets every byte', async () => {
    const TOTAL = 64 * MiB;
    const clientHash = createHash('sha256');
    const reply = deferred<{ status: number; body: string }>();
    const req = httpRequest(`${gw.url}/upload`, { method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream', 'content-length': String(TOTAL) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => reply.resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    const failed = new Promise<never>((_, reject) => req.on('error', reject));
    const write = async (b: Buffer) => {
      clientHash.update(b);
      upload.clientWritten += b.length;
      if (!req.write(b)) await Promise.race([new Promise((r) => req.once('drain', r)), failed]);
    };
    // The first MiB, then nothing until the upstream has seen body bytes.
    await write(block(0));
    await withTimeout(Promise.race([upload.firstChunk.promise, failed]), 20_000, 'the upstream never saw the first body chunk while the client held the rest back');
    assert.ok(upload.writtenAtFirstChunk > 0 && upload.writtenAtFirstChunk <= MiB, `client had written ${upload.writtenAtFirstChunk} bytes when the upstream saw the first chunk`);
    for (let i = 1; i < TOTAL / MiB; i++) await write(block(i));
    req.end();
    const r = await withTimeout(Promise.race([reply.promise, failed]), 60_000, 'upload response');
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { bytes: TOTAL, sha256: clientHash.digest('hex') });
  });

  it('passes server-sent events through unbuffered: the first event arrives before the upstream writes the second', async () => {
    const first = deferred<string>();
    const done = deferred<{ status: number; headers: IncomingMessage['headers']; text: string }>();
    const req = httpRequest(`${gw.url}/sse`, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        if (text.includes('\n\n')) first.resolve(text);
      });
      res.on('end', () => done.resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', (e) => first.resolve(`error: ${e.message}`));
    req.end();
    let early: string;
    try {
      early = await withTimeout(first.promise, 15_000, 'first event (the gateway buffers the response?)');
    } finally {
      // Only now may the upstream write the second event.
      sseGo.resolve();
    }
    assert.equal(early, 'data: one\n\n', 'exactly the first event, before the second exists');
    const r = await withTimeout(done.promise, 15_000, 'end of the event stream');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream');
    assert.equal(r.headers['x-frame-options'], SECURITY_HEADERS['x-frame-options']);
    assert.equal(r.text, 'data: one\n\ndata: two\n\n');
  });

  it('holds a fast upstream back for a slow client (backpressure) and delivers a 32 MiB response intact', async (t) => {
    const done = deferred<{ status: number; bytes: number; hash: string }>();
    let received = 0;
    const h = createHash('sha256');
    let resRef: IncomingMessage | null = null;
    // Once the stall is over: read in 2 MiB bursts with a pause after each.
    let slow = false;
    let stalledOnce = false;
    let nextPause = 0;
    const req = httpRequest(`${gw.url}/download`, { agent: false }, (res) => {
      resRef = res;
      res.on('data', (c: Buffer) => {
        received += c.length;
        h.update(c);
        // Stop reading right after the first chunk.
        if (!slow && !stalledOnce) {
          stalledOnce = true;
          res.pause();
        }
        if (slow && received >= nextPause) {
          nextPause = received + 2 * MiB;
          res.pause();
          setTimeout(() => res.resume(), 20);
        }
      });
      res.on('end', () => done.resolve({ status: res.statusCode ?? 0, bytes: received, hash: h.digest('hex') }));
      res.on('error', () => undefined);
    });
    req.on('error', (e) => done.resolve({ status: -1, bytes: received, hash: e.message }));
    req.end();
    // The first bytes arrive, then the client stops reading altogether.
    assert.ok(await until(() => stalledOnce, 15_000), 'first bytes arrived');
    const stalled = resRef as IncomingMessage | null;
    assert.ok(stalled);
    // While the client reads nothing, the upstream must end up waiting for 'drain' with
    // most of the 32 MiB still unwritten (the gateway does not buffer it for the client).
    assert.ok(await until(() => download.waitedForDrain > 0, 15_000), 'the upstream was made to wait');
    await sleep(1000);
    assert.ok(download.written < DOWNLOAD, `upstream wrote ${download.written} of ${DOWNLOAD} bytes while the client read nothing`);
    t.diagnostic(`upstream held at ${download.written} of ${DOWNLOAD} bytes while the client read nothing`);
    slow = true;
    stalled.resume();
    const r = await withTimeout(done.promise, 60_000, 'download end');
    assert.equal(r.status, 200);
    assert.equal(r.bytes, DOWNLOAD);
    assert.equal(r.hash, download.hash, 'the bytes are exactly the upstream’s');
  });

  it('answers 502 upstream_unavailable with the security headers when the upstream port is closed', async () => {
    const r = await request(`${gw.url}/anything`, { headers: { Host: 'down.test' } });
    assertErrorAnswer(r.status, r.headers, r.body, 502, 'upstream_unavailable');
  });

  it('answers 504 upstream_timeout when the upstream never answers within response_timeout', async () => {
    const before = held.length;
    const r = await request(`${gw.url}/never`, { headers: { Host: 'slow.test' } });
    assertErrorAnswer(r.status, r.headers, r.body, 504, 'upstream_timeout');
    assert.equal(held.length, before + 1, 'the upstream did get the request');
  });

  it('never passes hop-by-hop response headers (or those named in Connection) to the client', async () => {
    // HTTP/1.0 client: the gateway's own answer is not chunked, so any Transfer-Encoding would be the upstream's.
    const raw = await rawExchange(gw.port, 'GET /hop HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n', 5000);
    const h = parseHead(raw.bytes);
    assert.equal(h.status, 200);
    assert.equal(h.body, 'hello');
    assert.equal(h.headers['x-secret'], undefined, 'header named in Connection');
    assert.equal(h.headers['keep-alive'], undefined, 'Keep-Alive');
    assert.equal(h.headers['transfer-encoding'], undefined, 'Transfer-Encoding');
    assert.doesNotMatch(h.headers['connection'] ?? '', /x-secret/i);
    assert.equal(h.headers['server'], undefined);
    assert.equal(h.headers['x-powered-by'], undefined);
    assert.equal(h.headers['x-kept'], 'yes');
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(h.headers[k], v);

    // HTTP/1.1 keep-alive client.
    const r = await request(`${gw.url}/hop`, { headers: { Connection: 'keep-alive' } });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'hello');
    assert.equal(r.headers['x-secret'], undefined);
    assert.doesNotMatch(String(r.headers['keep-alive'] ?? ''), /77|999/);
    assert.doesNotMatch(String(r.headers['connection'] ?? ''), /x-secret/i);
    assert.equal(r.headers['server'], undefined);
    assert.equal(r.headers['x-powered-by'], undefined);
    // At most one Transfer-Encoding, and it is the gateway's own framing.
    const te = r.rawHeaders.filter((_, i) => i % 2 === 0).filter((n) => n.toLowerCase() === 'transfer-encoding');
    assert.ok(te.length <= 1);
  });

  it('never passes Server or X-Powered-By on an ordinary proxied response', async () => {
    const r = await request(`${gw.url}/no-such-route`);
    assert.equal(r.status, 404);
    assert.equal(r.body, 'no route');
    assert.equal(r.headers['server'], undefined);
    assert.equal(r.headers['x-powered-by'], undefined);
    assert.match(String(r.headers['x-request-id']), UUID);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(r.headers[k], v);
  });
});
