/**
 * WebSocket upgrades through the gateway with a real `ws` echo server behind it: frames
 * flow both ways, the 101 carries the security headers, and the site's stages (IP
 * filter, rate limit) apply to upgrades exactly as to requests. An upstream that declines
 * the upgrade yields its status, never a hanging client.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { baseConfig, parseHead, rawExchange, SECURITY_HEADERS, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { UUID, until } from '../testing/assert.js';

const T0 = Date.UTC(2030, 0, 1);

function upgradeRequest(host: string, path = '/echo'): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'
  );
}

interface Opened {
  readonly ws: WebSocket;
  readonly res: IncomingMessage;
  /** Messages received, in order. */
  readonly messages: Array<{ data: Buffer; binary: boolean }>;
}

/** Opens a WebSocket through the gateway; rejects with the status on a non-101 answer. */
function openWs(url: string, host?: string): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: host ? { host } : {}, handshakeTimeout: 10_000 });
    const messages: Opened['messages'] = [];
    let res: IncomingMessage | null = null;
    ws.on('message', (data: RawData, binary: boolean) => messages.push({ data: Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), binary }));
    ws.once('upgrade', (r) => (res = r));
    ws.once('open', () => resolve({ ws, res: res as IncomingMessage, messages }));
    ws.once('unexpected-response', (_req, r) => {
      reject(Object.assign(new Error(`unexpected response ${r.statusCode}`), { status: r.statusCode, headers: r.headers }));
      r.resume();
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((ok) => {
    ws.once('close', () => ok());
    ws.close();
    setTimeout(() => ws.terminate(), 2000).unref();
  });
}

describe('websocket: upgrades through the gateway', () => {
  let echo: Upstream;
  let decline: Upstream;
  let wss: WebSocketServer;
  let gw: TestGateway;
  const wsUrl = () => `ws://127.0.0.1:${gw.port}/echo`;
  /** Host header of every WebSocket connection the upstream accepted. */
  const accepted: string[] = [];
  const clients: WebSocket[] = [];

  before(async () => {
    echo = await startUpstream();
    wss = new WebSocketServer({ server: echo.server });
    wss.on('connection', (ws, req) => {
      accepted.push(String(req.headers.host));
      ws.send('welcome');
      ws.on('message', (data: RawData, binary: boolean) => ws.send(data, { binary }));
    });
    // An upstream that refuses upgrades: it has no upgrade handler and answers 403.
    decline = await startUpstream((_req, res) => {
      const body = 'no websockets here';
      res.writeHead(403, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), server: 'upstream/1.0' });
      res.end(body);
    });
    const site = (id: string, host: string, url: string, extra: Record<string, unknown> = {}) => ({ id, hosts: [host], upstream: { urls: [url] }, ...extra });
    gw = await startGateway(
      baseConfig(echo.url, {}, {
        sites: [
          { id: 'app', hosts: ['127.0.0.1', 'localhost'], upstream: { urls: [echo.url] } },
          site('private', 'private.test', echo.url, { ip_filter: { allow: ['10.0.0.0/8'] } }),
          site('limited', 'limited.test', echo.url, { rate_limits: [{ id: 'ws', limit: 2, window: '1m' }] }),
          site('decline', 'decline.test', decline.url),
        ],
      }),
      { now: () => T0 },
    );
  });
  after(async () => {
    for (const c of clients) c.terminate();
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((ok) => wss.close(() => ok()));
    await gw.close();
    await echo.close();
    await decline.close();
  });

  it('echoes text and binary messages both ways, and the upstream can speak first', async () => {
    const { ws, messages } = await openWs(wsUrl());
    clients.push(ws);
    assert.ok(await until(() => messages.length >= 1, 10_000), 'welcome from the upstream');
    ws.send('hello');
    const bin = Buffer.from([0, 1, 2, 250, 251, 252, 253, 254, 255]);
    ws.send(bin);
    const big = 'x'.repeat(200_000);
    ws.send(big);
    assert.ok(await until(() => messages.length >= 4, 10_000), `echoes arrived (${messages.length})`);
    assert.deepEqual(messages[0], { data: Buffer.from('welcome'), binary: false });
    assert.deepEqual(messages[1], { data: Buffer.from('hello'), binary: false });
    assert.deepEqual(messages[2], { data: bin, binary: true });
    assert.equal(messages[3]?.data.toString(), big);
    await closeWs(ws);
  });

  it('answers the upgrade with 101 carrying the security headers and a request id', async () => {
    const { ws, res } = await openWs(wsUrl());
    clients.push(ws);
    assert.equal(res.statusCode, 101);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(res.headers[k], v, `header ${k}`);
    assert.match(String(res.headers['x-request-id']), UUID);
    assert.equal(String(res.headers['upgrade']).toLowerCase(), 'websocket');
    await closeWs(ws);
  });

  it('closes an upgrade from a client outside the site allow list with zero bytes written', async () => {
    const before = accepted.filter((h) => h === 'private.test').length;
    const r = await rawExchange(gw.port, upgradeRequest('private.test'), 5000);
    assert.equal(r.closed, true, 'the connection is closed');
    assert.equal(r.bytes.length, 0, `no bytes written, got: ${JSON.stringify(r.bytes.toString())}`);
    assert.equal(accepted.filter((h) => h === 'private.test').length, before, 'the upstream never accepted it');
  });

  it('refuses the third upgrade within the window with 429 rate_limited and Retry-After', async () => {
    for (let i = 0; i < 2; i++) {
      const { ws, res } = await openWs(wsUrl(), 'limited.test');
      clients.push(ws);
      assert.equal(res.statusCode, 101);
      assert.equal(res.headers['ratelimit-policy'], '"ws";q=2;w=60');
      await closeWs(ws);
    }
    const acceptedBefore = accepted.filter((h) => h === 'limited.test').length;
    const r = await rawExchange(gw.port, upgradeRequest('limited.test'), 5000);
    assert.equal(r.closed, true);
    const h = parseHead(r.bytes);
    assert.equal(h.status, 429);
    assert.equal(h.headers['retry-after'], '60');
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(h.headers[k], v, `header ${k}`);
    assert.equal(h.headers['cache-control'], 'no-store');
    assert.match(h.headers['x-request-id'] ?? '', UUID);
    const body = JSON.parse(h.body) as { error: { code: string; request_id: string } };
    assert.equal(body.error.code, 'rate_limited');
    assert.equal(body.error.request_id, h.headers['x-request-id']);
    assert.equal(accepted.filter((h) => h === 'limited.test').length, acceptedBefore, 'the upstream never saw the refused upgrade');
  });

  it('passes an upstream’s refusal to upgrade (403) on to the client instead of hanging', async () => {
    const r = await rawExchange(gw.port, upgradeRequest('decline.test'), 10_000);
    assert.equal(r.closed, true, 'the gateway closes the connection after the answer (no hang)');
    const h = parseHead(r.bytes);
    assert.equal(h.status, 403);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(h.headers[k], v, `header ${k}`);
    assert.match(h.headers['x-request-id'] ?? '', UUID);
    assert.equal(h.headers['server'], undefined);
    // A valid HTTP message: at most one Content-Length (the upstream's must not be kept next to the gateway's own).
    const head = r.bytes.toString().split('\r\n\r\n')[0] ?? '';
    const lengths = head.split('\r\n').filter((l) => /^content-length:/i.test(l));
    assert.equal(lengths.length, 1, `Content-Length headers: ${JSON.stringify(lengths)}`);

    // A real WebSocket client sees the 403 (not a parse error, not a hang).
    await assert.rejects(openWs(wsUrl(), 'decline.test'), (err: Error & { status?: number; headers?: IncomingMessage['headers'] }) => {
      assert.equal(err.status, 403, `client error: ${err.message}`);
      assert.equal(err.headers?.['x-frame-options'], SECURITY_HEADERS['x-frame-options']);
      return true;
    });
  });
});
