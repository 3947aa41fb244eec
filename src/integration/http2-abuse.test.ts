/**
 * HTTP/2 abuse bounds (server/http2.ts, docs/configuration.md#http2), each with a raw
 * frame client: the offending connection is closed (or the stream refused), and the
 * process keeps serving — a new connection gets its answer afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { FLAG, FRAME, frame, H2, h2Request, h2Session, hpack, RawH2, rstStream } from '../testing/h2.js';
import { createTestCa, type TestCa } from '../testing/tls.js';

const GET: ReadonlyArray<readonly [string, string]> = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':path', '/'],
  [':authority', 'localhost'],
];

describe('HTTP/2 abuse bounds', () => {
  let ca: TestCa;
  let up: Upstream;
  let gw: TestGateway;
  let slowRelease: (() => void) | null = null;

  async function healthy(): Promise<void> {
    const s = await h2Session(gw.port, { ca: ca.rootPem });
    try {
      const r = await h2Request(s, { ':authority': 'localhost', ':path': '/healthy' });
      assert.equal(r.status, 200, 'a new connection is served');
    } finally {
      s.close();
    }
  }

  async function goaways(reason: string): Promise<number> {
    const body = (await request(`${gw.adminUrl}/metrics`)).body;
    const m = new RegExp(`gatehouse_http2_goaway_total\\{reason="${reason}"\\} (\\d+)`).exec(body);
    return m ? Number(m[1]) : 0;
  }

  before(async () => {
    ca = await createTestCa();
    up = await startUpstream((req, res) => {
      const answer = () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok');
      };
      if (req.url === '/slow') {
        const prev = slowRelease;
        slowRelease = () => {
          prev?.();
          answer();
        };
      } else {
        req.resume();
        req.on('end', answer);
      }
    });
    gw = await startGateway({
      listen: [{ address: '127.0.0.1:0', tls: { internal_ca: true } }],
      admin: { listen: '127.0.0.1:0' },
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      log: { level: 'info' },
      http: { keep_alive_timeout: '30s', http2: { max_concurrent_streams: 5, initial_window_size: '16KiB', max_resets: 50, reset_interval: '10s' } },
      sites: [{ id: 'app', hosts: ['localhost'], upstream: { urls: [up.url] }, max_body_bytes: '1KiB' }],
    });
  });
  after(async () => {
    slowRelease?.();
    await gw?.close();
    await up?.close();
  });

  it('advertises the configured bounds in SETTINGS: streams, window, header list size, no push', async () => {
    const raw = await RawH2.open(gw.port, ca.rootPem);
    try {
      assert.ok(await raw.until(() => raw.settings().size > 0));
      const st = raw.settings();
      assert.equal(st.get(H2.NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 5);
      assert.equal(st.get(H2.NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE), 16_384);
      assert.ok((st.get(H2.NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE) ?? 0) > 16_384);
      assert.equal(st.get(H2.NGHTTP2_SETTINGS_ENABLE_PUSH) ?? 0, 0);
    } finally {
      raw.close();
    }
  });

  it('max_concurrent_streams: a client that opens more streams than advertised is disconnected; at most that many reach the upstream', async () => {
    const seenBefore = up.seen.length;
    const raw = await RawH2.open(gw.port, ca.rootPem);
    try {
      const slow = GET.map(([n, v]) => [n, n === ':path' ? '/slow' : v] as const);
      for (let i = 0; i < 8; i++) raw.headers(1 + 2 * i, slow);
      // RFC 9113 §5.1.2 allows a stream error (REFUSED_STREAM) or, as nghttp2 does once the limit was acknowledged, a connection error.
      assert.ok(await raw.until(() => raw.closed || [11, 13, 15].every((id) => raw.reset(id) !== null)));
      for (const id of [11, 13, 15]) assert.ok(!raw.responded(id), `stream ${id} is not answered`);
      assert.ok(up.seen.length - seenBefore <= 5, `${up.seen.length - seenBefore} requests reached the upstream`);
    } finally {
      raw.close();
      slowRelease?.();
      slowRelease = null;
    }
    await healthy();
  });

  it('flow control: data past the advertised stream window is a FLOW_CONTROL_ERROR', async () => {
    const raw = await RawH2.open(gw.port, ca.rootPem);
    try {
      assert.ok(await raw.until(() => raw.settings().size > 0));
      // A declared body over the site's limit is refused before it is read: nothing opens the window.
      raw.headers(1, [[':method', 'POST'], [':scheme', 'https'], [':path', '/upload'], [':authority', 'localhost'], ['content-length', '100000']], true);
      for (let i = 0; i < 4; i++) raw.write(frame(FRAME.DATA, 0, 1, Buffer.alloc(16_384, 0x61)));
      assert.ok(await raw.until(() => raw.reset(1) === H2.NGHTTP2_FLOW_CONTROL_ERROR || raw.goaway() === H2.NGHTTP2_FLOW_CONTROL_ERROR), JSON.stringify(raw.frames.map((f) => [f.type, f.stream, f.payload.subarray(0, 8).toString('hex')])));
    } finally {
      raw.close();
    }
    await healthy();
  });

  it('Rapid Reset (CVE-2023-44487): past max_resets per interval the connection gets GOAWAY ENHANCE_YOUR_CALM and closes', async () => {
    const before = await goaways('rapid_reset');
    const raw = await RawH2.open(gw.port, ca.rootPem);
    try {
      const burst: Buffer[] = [];
      for (let i = 0; i < 200; i++) {
        const id = 1 + 2 * i;
        burst.push(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, hpack(GET)), rstStream(id, H2.NGHTTP2_CANCEL));
      }
      raw.write(Buffer.concat(burst));
      assert.ok(await raw.until(() => raw.goaway() !== null), JSON.stringify(raw.frames.slice(0, 30).map((f) => [f.type, f.stream, f.payload.subarray(0, 8).toString('hex')])) + raw.frames.length);
      assert.equal(raw.goaway(), H2.NGHTTP2_ENHANCE_YOUR_CALM);
      assert.ok(await raw.until(() => raw.closed), 'the connection is closed');
    } finally {
      raw.close();
    }
    assert.equal(await goaways('rapid_reset'), before + 1);
    assert.ok(gw.logs.some((l) => l.event === 'http2_rapid_reset'));
    await healthy();
  });

  it('SETTINGS flood: a client that sends SETTINGS without reading the ACKs is disconnected', async () => {
    const raw = await RawH2.open(gw.port, ca.rootPem);
    try {
      raw.socket.pause();
      const one = frame(FRAME.SETTINGS, 0, 0, Buffer.from([0, 4, 0, 0, 0x40, 0]));
      const chunk = Buffer.concat(Array.from({ length: 5000 }, () => one));
      for (let i = 0; i < 40 && !raw.closed; i++) {
        raw.write(chunk);
        await new Promise((r) => setTimeout(r, 10));
      }
      raw.socket.resume();
      assert.ok(await raw.until(() => raw.closed, 10_000), 'the connection is closed');
    } finally {
      raw.close();
    }
    await healthy();
  });

  it('PING flood: a client that sends PINGs without reading the answers is disconnected', async () => {
    const raw = await RawH2.open(gw.port, ca.rootPem);
    try {
      raw.socket.pause();
      const one = frame(FRAME.PING, 0, 0, Buffer.alloc(8, 1));
      const chunk = Buffer.concat(Array.from({ length: 5000 }, () => one));
      for (let i = 0; i < 40 && !raw.closed; i++) {
        raw.write(chunk);
        await new Promise((r) => setTimeout(r, 10));
      }
      raw.socket.resume();
      assert.ok(await raw.until(() => raw.closed, 10_000), 'the connection is closed');
    } finally {
      raw.close();
    }
    await healthy();
  });

  it('CONTINUATION flood (CVE-2024-27316 class): endless header continuation closes the connection; nothing reaches the upstream', async () => {
    const seenBefore = up.seen.length;
    const raw = await RawH2.open(gw.port, ca.rootPem);
    try {
      raw.write(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, hpack(GET)));
      const cont = frame(FRAME.CONTINUATION, 0, 1, hpack([['x-a', 'b'.repeat(100)]]));
      const chunk = Buffer.concat(Array.from({ length: 200 }, () => cont));
      for (let i = 0; i < 100 && !raw.closed; i++) {
        raw.write(chunk);
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(await raw.until(() => raw.closed || raw.goaway() !== null || raw.reset(1) !== null, 10_000), 'refused');
      assert.ok(!raw.responded(1));
    } finally {
      raw.close();
    }
    assert.equal(up.seen.length, seenBefore);
    await healthy();
  });
});
