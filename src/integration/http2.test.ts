/**
 * HTTP/2 on a TLS listener (docs/lifecycle.md#http2): ALPN negotiates h2 for curl and
 * node:http2 clients; each stream is the same exchange as an HTTP/1.1 request — the same
 * stages, refusals, Host checks, limits, log line and audit record — and shutdown sends
 * GOAWAY while open streams finish. Clients connect from 127.0.0.9 (outside the `admin`
 * site's allowlist) like the one-reading suite.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import type { ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { auditFiles, type AuditFiles } from '../audit/test-files.js';
import type { ChainedRecord } from '../audit/record.js';
import { httpsGet } from '../testing/tls.js';
import { request, sleep, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { createTestCa, type TestCa } from '../testing/tls.js';
import { FLAG, FRAME, frame, H2, h2Request, h2Session, RawH2 } from '../testing/h2.js';

const run = promisify(execFile);
const OUTSIDE = '127.0.0.9';
const TOKEN = 'admin-token-for-http2-tests-0123456789';

describe('HTTP/2 on a TLS listener', () => {
  let ca: TestCa;
  let up: Upstream;
  let gw: TestGateway;
  let port: number;
  let files: AuditFiles;
  let rootFile: string;
  const received: Array<{ method: string; url: string; rawHeaders: string[]; body: Buffer }> = [];
  let s: ClientHttp2Session;

  const get = (authority: string, path: string, headers: Record<string, string | string[]> = {}) => h2Request(s, { ':authority': authority, ':path': path, ...headers });

  before(async () => {
    ca = await createTestCa();
    rootFile = join(ca.dir, 'root.pem');
    writeFileSync(rootFile, ca.rootPem);
    files = auditFiles();
    const tokenFile = join(files.dir, 'admin.token');
    writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
    up = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) });
        const body = JSON.stringify({ url: req.url, bytes: Buffer.concat(chunks).length });
        res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive', 'keep-alive': 'timeout=5', server: 'upstream/1.0' });
        res.end(body);
      });
    });
    const site = (id: string, hosts: string[], extra: Record<string, unknown> = {}) => ({ id, hosts, upstream: { urls: [up.url] }, ...extra });
    gw = await startGateway({
      listen: [{ address: '127.0.0.1:0', tls: { internal_ca: true } }],
      admin: { listen: '127.0.0.1:0', token_file: tokenFile },
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      log: { level: 'info' },
      http: { keep_alive_timeout: '60s' },
      state: { dir: files.stateDir },
      audit: files.block(),
      sites: [
        site('admin', ['files.test'], { path_prefix: '/admin', ip_filter: { allow: ['127.0.0.1/32'] } }),
        site('public', ['files.test', 'localhost'], { max_body_bytes: '1KiB' }),
        site('strict', ['strict.test'], { request: { header_underscores: 'reject' } }),
      ],
    });
    port = (gw.gw.addresses().public[0] as AddressInfo).port;
    s = await h2Session(port, { ca: ca.rootPem, servername: 'files.test', localAddress: OUTSIDE });
  });
  after(async () => {
    s?.close();
    await gw?.close();
    await up?.close();
    rmSync(files.dir, { recursive: true, force: true });
  });

  it('curl --http2 negotiates h2 and gets the proxied answer with the security headers', async () => {
    received.length = 0;
    const { stdout } = await run('curl', ['-s', '--http2', '--cacert', rootFile, '--resolve', `files.test:${port}:127.0.0.1`, '-D', '-', '-w', '\nversion=%{http_version}', `https://files.test:${port}/x?y=1`]);
    assert.match(stdout, /^HTTP\/2 200/);
    assert.match(stdout, /version=2$/);
    assert.match(stdout, /strict-transport-security: /i);
    assert.doesNotMatch(stdout, /^server: upstream/im, 'upstream Server header dropped as over HTTP/1.1');
    assert.equal(received[0]?.url, '/x?y=1');
    const h = received[0]?.rawHeaders ?? [];
    const header = (n: string) => h[h.findIndex((x, i) => i % 2 === 0 && x.toLowerCase() === n) + 1];
    assert.equal(header('host'), `files.test:${port}`);
    assert.equal(header('x-forwarded-proto'), 'https');
    assert.ok(!h.some((x) => x.startsWith(':')), 'no pseudo-header reaches the upstream');
  });

  it('an HTTP/1.1-only client on the same listener still gets HTTP/1.1', async () => {
    const r = await httpsGet(port, { ca: ca.rootPem, servername: 'files.test', path: '/h1' });
    assert.equal(r.status, 200);
  });

  it('node:http2: GET and a streamed POST without content-length reach the upstream; one log line and one audit record per stream', async () => {
    received.length = 0;
    const a = await get('files.test', '/one');
    assert.equal(a.status, 200);
    assert.ok(a.headers['x-request-id']);
    assert.equal(a.headers['connection'], undefined);
    assert.equal(a.headers['keep-alive'], undefined);
    const b = await h2Request(s, { ':method': 'POST', ':authority': 'files.test', ':path': '/two', 'content-type': 'text/plain', cookie: ['a=1', 'b=2'] }, 'x'.repeat(700));
    assert.equal(b.status, 200);
    assert.equal(JSON.parse(b.body).bytes, 700);
    const two = received.find((r) => r.url === '/two');
    assert.equal(two?.body.length, 700);
    const cookies = (two?.rawHeaders ?? []).filter((_, i, h) => i % 2 === 1 && h[i - 1]?.toLowerCase() === 'cookie');
    assert.deepEqual(cookies, ['a=1; b=2'], 'cookie crumbs joined into one Cookie line (RFC 9113 §8.2.3)');
    const big = await h2Request(s, { ':method': 'POST', ':authority': 'files.test', ':path': '/big' }, 'y'.repeat(5000));
    assert.equal(big.status, 413, 'the site body limit applies to a body without a declared length');
    assert.match(big.body, /"code":"body_too_large"/);
    const lines = gw.logs.filter((l) => l.msg === 'request' && l.protocol === 'h2' && (l.path === '/one' || l.path === '/two'));
    assert.equal(lines.length, 2);
    assert.equal(lines[0]?.client_ip, OUTSIDE);
    await gw.gw.audit?.writer.flush();
    const r = await request(`${gw.adminUrl}/audit/records?limit=1000`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const recs = (JSON.parse(r.body) as { records: ChainedRecord[] }).records;
    assert.ok(recs.some((x) => x.path === '/one' && x.decision === 'allowed'));
    assert.ok(recs.some((x) => x.path === '/big' && x.decision === 'refused'));
  });

  describe('the same refusals as HTTP/1.1', () => {
    it('dot segments and escaped separators: decided and forwarded as one path, or refused before the upstream', async () => {
      received.length = 0;
      const ok = await get('files.test', '/admin/../secret');
      assert.equal(ok.status, 200);
      assert.deepEqual(received.map((x) => x.url), ['/secret']);
      received.length = 0;
      for (const p of ['/admin/..%2fsecret', '/admin/%2e%2e/secret', '/admin%5c..%5csecret', '/admin/%252e%252e/secret', '/admin/..%3bx/secret']) {
        const r = await get('files.test', p);
        assert.equal(r.status, 400, p);
        assert.match(r.body, /"code":"ambiguous_path"/, p);
      }
      assert.equal(received.length, 0);
      const blocked = await get('files.test', '/admin/x');
      assert.equal(blocked.status, 0, 'the admin site drops 127.0.0.9 with zero bytes: the stream is reset');
      const after = await get('files.test', '/still-open');
      assert.equal(after.status, 200, 'a silent refusal resets that stream only; the connection serves the next one');
    });

    it('a bad :authority is refused like a bad Host', async () => {
      received.length = 0;
      for (const host of ['files.test:abc', 'files.test:99999', 'files.test:0', '%66iles.test', 'files.test;vault.test', 'files..test']) {
        const r = await get(host, '/x');
        assert.equal(r.status, 400, host);
        assert.match(r.body, /"code":"bad_request"/, host);
      }
      assert.equal(received.length, 0);
    });

    it(':authority and a different host header are refused; the same one is forwarded once', async () => {
      received.length = 0;
      const r = await get('files.test', '/x', { host: 'vault.test' });
      assert.equal(r.status, 400);
      assert.match(r.body, /"code":"bad_request"/);
      assert.equal(received.length, 0);
      const same = await get('files.test', '/same', { host: 'files.test' });
      assert.equal(same.status, 200);
      const h = received[0]?.rawHeaders ?? [];
      assert.equal(h.filter((x, i) => i % 2 === 0 && x.toLowerCase() === 'host').length, 1);
      // Only a host header (no :authority) is the authority, as RFC 9113 §8.3.1 allows.
      const raw = await RawH2.open(port, ca.rootPem, 'files.test');
      try {
        raw.headers(1, [[':method', 'GET'], [':scheme', 'https'], [':path', '/host-only'], ['host', 'files.test']]);
        raw.headers(3, [[':method', 'GET'], [':scheme', 'https'], [':path', '/dup'], ['host', 'files.test'], ['host', 'vault.test']]);
        raw.headers(5, [[':method', 'GET'], [':scheme', 'http'], [':path', '/scheme'], [':authority', 'files.test']]);
        const answered = await raw.until(() => raw.responded(1) && (raw.responded(3) || raw.reset(3) !== null) && raw.responded(5));
        assert.ok(answered, JSON.stringify(raw.frames.map((f) => [f.type, f.stream, f.payload.subarray(0, 8).toString('hex')])));
        const status = (id: number) => raw.frames.find((f) => f.type === FRAME.HEADERS && f.stream === id)?.payload[0];
        assert.equal(status(1), 0x88, '200 (HPACK static index 8)');
        // nghttp2 takes two host fields for a malformed request; were it to pass them, the duplicate-Host check answers 400.
        assert.ok(raw.reset(3) === H2.NGHTTP2_PROTOCOL_ERROR || status(3) === 0x8c, 'two host fields: reset or 400 (static index 12)');
        assert.equal(status(5), 0x8c, ':scheme http on a TLS listener: 400');
      } finally {
        raw.close();
      }
      assert.deepEqual(received.map((x) => x.url), ['/same', '/host-only']);
    });

    it('oversize headers: 431 headers_too_large (bytes and count), and far past the limit the stream is reset', async () => {
      received.length = 0;
      const bytes = await get('files.test', '/x', { 'x-big': 'a'.repeat(17_000) });
      assert.equal(bytes.status, 431);
      assert.match(bytes.body, /"code":"headers_too_large"/);
      const many: Record<string, string> = {};
      for (let i = 0; i < 120; i++) many[`x-h${i}`] = 'v';
      const count = await get('files.test', '/x', many);
      assert.equal(count.status, 431);
      const huge = await get('files.test', '/x', { 'x-big': 'a'.repeat(60_000) });
      assert.notEqual(huge.status, 200);
      assert.equal(received.length, 0);
      assert.equal((await get('files.test', '/healthy')).status, 200);
    });

    it('header_underscores: reject answers 400 bad_header over h2 too', async () => {
      const s2 = await h2Session(port, { ca: ca.rootPem, servername: 'strict.test', localAddress: OUTSIDE });
      try {
        const r = await h2Request(s2, { ':authority': 'strict.test', ':path': '/x', x_user: 'a' });
        assert.equal(r.status, 400);
        assert.match(r.body, /"code":"bad_header"/);
      } finally {
        s2.close();
      }
    });

    it('CONNECT is refused (400), and so are extended CONNECT and absolute :path values', async () => {
      received.length = 0;
      const c = await h2Request(s, { ':method': 'CONNECT', ':authority': 'files.test:443', ':path': undefined, ':scheme': undefined });
      assert.equal(c.status, 400, `CONNECT: ${c.status} ${c.rstCode}`);
      assert.match(c.body, /"code":"bad_request"/);
      const raw = await RawH2.open(port, ca.rootPem, 'files.test');
      try {
        raw.headers(1, [[':method', 'GET'], [':scheme', 'https'], [':path', 'https://vault.test/x'], [':authority', 'files.test']]);
        raw.headers(3, [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'https'], [':path', '/ws'], [':authority', 'files.test']]);
        assert.ok(await raw.until(() => (raw.responded(1) || raw.reset(1) !== null) && (raw.responded(3) || raw.reset(3) !== null)));
        assert.notEqual(raw.frames.find((f) => f.type === FRAME.HEADERS && f.stream === 1)?.payload[0], 0x88);
        assert.ok(!raw.responded(3) || raw.frames.find((f) => f.type === FRAME.HEADERS && f.stream === 3)?.payload[0] !== 0x88);
      } finally {
        raw.close();
      }
      assert.equal(received.length, 0);
    });

    it('connection-specific headers and uppercase names are malformed (RFC 9113 §8.2): the stream is reset, never forwarded', async () => {
      received.length = 0;
      const raw = await RawH2.open(port, ca.rootPem, 'files.test');
      try {
        const base: Array<[string, string]> = [[':method', 'GET'], [':scheme', 'https'], [':path', '/bad'], [':authority', 'files.test']];
        const bad: Array<[string, string]> = [['connection', 'close'], ['keep-alive', '5'], ['transfer-encoding', 'chunked'], ['upgrade', 'websocket'], ['te', 'gzip'], ['X-Upper', '1'], ['proxy-connection', 'x']];
        bad.forEach((h, i) => raw.headers(1 + 2 * i, [...base, h]));
        raw.headers(1 + 2 * bad.length, base.map(([n, v]) => (n === ':path' ? [n, '/fine'] : [n, v])));
        assert.ok(await raw.until(() => bad.every((_, i) => raw.reset(1 + 2 * i) !== null || raw.responded(1 + 2 * i)) && raw.responded(1 + 2 * bad.length)));
        bad.forEach((h, i) => {
          const st = raw.frames.find((f) => f.type === FRAME.HEADERS && f.stream === 1 + 2 * i)?.payload[0];
          assert.ok(raw.reset(1 + 2 * i) === H2.NGHTTP2_PROTOCOL_ERROR || st === 0x8c, `${h[0]}: reset or 400`);
        });
      } finally {
        raw.close();
      }
      assert.deepEqual(received.map((x) => x.url), ['/fine']);
    });
  });

  it('metrics count h2 sessions, streams and requests by protocol', async () => {
    const m = (await request(`${gw.adminUrl}/metrics`)).body;
    assert.match(m, /gatehouse_http2_sessions_total [1-9]/);
    assert.match(m, /gatehouse_http2_streams_total [1-9]/);
    assert.match(m, /gatehouse_http_requests_by_protocol_total\{protocol="h2"\} [1-9]/);
    assert.match(m, /gatehouse_http_requests_by_protocol_total\{protocol="http\/1.1"\} [1-9]/);
  });
});

describe('HTTP/2 listener settings and shutdown', () => {
  let ca: TestCa;
  before(async () => {
    ca = await createTestCa();
  });

  it('http2: false keeps the listener HTTP/1.1 only (ALPN offers no h2)', async () => {
    const up = await startUpstream();
    const gw = await startGateway({
      listen: [{ address: '127.0.0.1:0', tls: { internal_ca: true }, http2: false }],
      admin: { listen: '127.0.0.1:0' },
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      sites: [{ id: 'app', hosts: ['localhost'], upstream: { urls: [up.url] } }],
    });
    try {
      // A client that offers only h2 is refused in the handshake (no_application_protocol).
      await assert.rejects(RawH2.open(gw.port, ca.rootPem), /no application protocol|ALPN gave/);
      const r = await httpsGet(gw.port, { ca: ca.rootPem, path: '/' });
      assert.equal(r.status, 200);
    } finally {
      await gw.close();
      await up.close();
    }
  });

  it('shutdown sends GOAWAY: the open stream finishes, the connection takes no new one', async () => {
    const up = await startUpstream((req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('slow');
      }, 600);
    });
    const gw = await startGateway({
      listen: [{ address: '127.0.0.1:0', tls: { internal_ca: true } }],
      admin: { listen: '127.0.0.1:0' },
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      sites: [{ id: 'app', hosts: ['localhost'], upstream: { urls: [up.url] } }],
    });
    const s = await h2Session(gw.port, { ca: ca.rootPem });
    let goaway: number | null = null;
    s.on('goaway', (code: number) => {
      goaway = code;
    });
    s.on('error', () => undefined);
    try {
      const pending = h2Request(s, { ':authority': 'localhost', ':path': '/slow' });
      await sleep(200);
      const closing = gw.gw.close(5000);
      const r = await pending;
      assert.equal(r.status, 200);
      assert.equal(r.body, 'slow');
      await closing;
      assert.equal(goaway, H2.NGHTTP2_NO_ERROR);
      const m = gw.gw.metrics.registry.getSingleMetric('gatehouse_http2_goaway_total') as unknown as { get(): Promise<{ values: Array<{ labels: { reason?: string }; value: number }> }> };
      assert.ok((await m.get()).values.some((v) => v.labels.reason === 'shutdown' && v.value >= 1));
    } finally {
      s.destroy();
      await gw.close();
      await up.close();
    }
  });

  it('a connection with no open stream for keep_alive_timeout is closed with GOAWAY', async () => {
    const up = await startUpstream();
    const gw = await startGateway({
      listen: [{ address: '127.0.0.1:0', tls: { internal_ca: true } }],
      admin: { listen: '127.0.0.1:0' },
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      http: { keep_alive_timeout: '300ms' },
      sites: [{ id: 'app', hosts: ['localhost'], upstream: { urls: [up.url] } }],
    });
    const raw = await RawH2.open(gw.port, ca.rootPem);
    try {
      raw.headers(1, [[':method', 'GET'], [':scheme', 'https'], [':path', '/'], [':authority', 'localhost']]);
      assert.ok(await raw.until(() => raw.responded(1)));
      assert.ok(await raw.until(() => raw.goaway() !== null, 3000), 'GOAWAY after the idle time');
      assert.equal(raw.goaway(), H2.NGHTTP2_NO_ERROR);
      raw.write(frame(FRAME.PING, 0, 0, Buffer.alloc(8)));
      assert.ok(await raw.until(() => raw.closed, 3000));
      void FLAG;
    } finally {
      raw.close();
      await gw.close();
      await up.close();
    }
  });
});
