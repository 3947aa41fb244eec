/**
 * One reading (docs/lifecycle.md#one-reading): what a control decides on is exactly what
 * the upstream receives, or the request is refused. One test per rule of issue #11, each
 * named after the hole it closes, against a real gateway and a raw-recording upstream.
 * (The differential suite in src/integration/differential/ sends the same classes to
 * real upstream frameworks.)
 *
 * Sites: `admin` (files.test, /admin, only 127.0.0.1 allowed) and `public` (files.test,
 * the rest) on one upstream; clients connect from 127.0.0.9 to be outside the allowlist.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { until } from '../testing/assert.js';
import { baseConfig, parseHead, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';

const OUTSIDE = '127.0.0.9';

/** Sends raw bytes from `from`, collects everything until the server closes (or `ms`). */
function send(port: number, data: string | Buffer, from = OUTSIDE, ms = 3000): Promise<{ bytes: Buffer; text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect({ port, host: '127.0.0.1', localAddress: from });
    let settled = false;
    const done = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      s.destroy();
      const bytes = Buffer.concat(chunks);
      resolve({ bytes, text: bytes.toString('latin1'), closed });
    };
    const t = setTimeout(() => done(false), ms);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => done(true));
    s.on('error', () => done(true));
    s.on('connect', () => s.write(data));
  });
}

/** The status lines of every response in `text`, in order. */
const statuses = (text: string): number[] => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
const codeOf = (text: string): string | undefined => /"code":"([a-z_]+)"/.exec(text)?.[1];

describe('one reading: decided on = forwarded, or refused', () => {
  let up: Upstream;
  let g: TestGateway;
  /** What the upstream received, raw (target, headers as sent on the wire, body). */
  const received: Array<{ url: string; rawHeaders: string[]; body: Buffer }> = [];
  const seen = (pred: (r: { url: string }) => boolean) => received.filter(pred).length;

  before(async () => {
    up = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ url: req.url ?? '', rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
        res.end('ok');
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-reading-'));
    writeFileSync(join(dir, 'p.cedar'), 'permit (principal, action, resource) unless { context.body has model && context.body.model == "forbidden" };\n');
    const site = (id: string, hosts: string[], extra: Record<string, unknown> = {}) => ({ id, hosts, upstream: { urls: [up.url] }, ...extra });
    g = await startGateway(
      baseConfig(up.url, {}, {
        sites: [
          site('admin', ['files.test'], { path_prefix: '/admin', ip_filter: { allow: ['127.0.0.1/32'] } }),
          site('public', ['files.test'], { max_body_bytes: '1KiB' }),
          site('decoding', ['decode.test'], { request: { escaped_path: 'decode' } }),
          site('kept', ['keep.test'], { request: { escaped_path: 'keep' } }),
          site('strict', ['strict.test'], { request: { path_parameters: 'reject', header_underscores: 'reject' } }),
          site('cgi', ['cgi.test'], { request: { header_underscores: 'allow' } }),
          site('tunnels', ['ws.test'], { request: { upgrades: ['websocket', 'h2c'] } }),
          site('body', ['body.test'], { policy: { files: [join(dir, 'p.cedar')], body_fields: ['model'] } }),
        ],
      }),
    );
  });
  after(async () => {
    await g?.close();
    await up?.close();
  });

  describe('path', () => {
    it('a dot segment cannot walk out of a locked prefix: /admin/../secret is decided and forwarded as /secret', async () => {
      received.length = 0;
      const r = await send(g.port, 'GET /admin/../secret HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n');
      assert.deepEqual(statuses(r.text), [200]);
      assert.deepEqual(received.map((x) => x.url), ['/secret']);
    });

    it('an encoded slash cannot hide a dot segment: /admin/..%2fsecret is refused (escaped_path: reject), the upstream sees nothing', async () => {
      received.length = 0;
      for (const p of ['/admin/..%2fsecret', '/admin/%2e%2e/secret', '/admin%5c..%5csecret', '/admin/%252e%252e/secret', '/admin/..%3bx/secret']) {
        const r = await send(g.port, `GET ${p} HTTP/1.1\r\nHost: files.test\r\n\r\n`);
        assert.deepEqual(statuses(r.text), [400], p);
        assert.equal(codeOf(r.text), 'ambiguous_path', p);
        assert.ok(r.closed, `${p}: the connection is closed after a 400`);
      }
      assert.equal(received.length, 0);
    });

    it('escaped_path: decode forwards what it decided on; keep forwards the escapes as received (hex uppercased)', async () => {
      received.length = 0;
      await send(g.port, 'GET /a/..%2fsecret/%2E%2e/x%5Cy HTTP/1.1\r\nHost: decode.test\r\nConnection: close\r\n\r\n');
      await send(g.port, 'GET /a/..%2fsecret HTTP/1.1\r\nHost: keep.test\r\nConnection: close\r\n\r\n');
      assert.deepEqual(received.map((x) => x.url), ['/x/y', '/a/..%2Fsecret']);
    });

    it('slashes are merged, backslashes are slashes, unreserved escapes decoded, ;params kept or refused by setting', async () => {
      received.length = 0;
      await send(g.port, 'GET //a\\b/%7euser/x;v=1?q=%2f HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n');
      assert.deepEqual(received.map((x) => x.url), ['/a/b/~user/x;v=1?q=%2f']);
      const r = await send(g.port, 'GET /x;jsessionid=1/y HTTP/1.1\r\nHost: strict.test\r\n\r\n');
      assert.equal(codeOf(r.text), 'ambiguous_path');
      assert.equal(received.length, 1);
    });
  });

  describe('host', () => {
    it('an absolute-form target wins over the Host header, and the upstream gets the routed Host, not the header', async () => {
      received.length = 0;
      const r = await send(g.port, 'GET http://files.test/x HTTP/1.1\r\nHost: vault.test\r\nConnection: close\r\n\r\n');
      assert.deepEqual(statuses(r.text), [200]);
      const h = received[0]?.rawHeaders ?? [];
      assert.deepEqual(h.filter((_, i) => i % 2 === 0 && h[i]?.toLowerCase() === 'host').length, 1);
      assert.equal(h[h.findIndex((n) => n.toLowerCase() === 'host') + 1], 'files.test');
    });

    it('a host that is not a plain name, IPv4 or [IPv6] with a numeric port is refused: ports, percent-encoding, sub-delimiters', async () => {
      received.length = 0;
      for (const host of ['files.test:abc', 'files.test:99999', 'files.test:0', 'files.test:', '%66iles.test', 'files.test;vault.test', 'files.test,vault.test', 'files..test', '[::1', '[fe80::1%25eth0]']) {
        const r = await send(g.port, `GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        assert.deepEqual(statuses(r.text), [400], host);
        assert.equal(codeOf(r.text), 'bad_request', host);
      }
      assert.equal(received.length, 0);
      // Case, a trailing dot and a port are fine: the upstream gets the canonical form.
      await send(g.port, 'GET /x HTTP/1.1\r\nHost: FILES.test.:8080\r\nConnection: close\r\n\r\n');
      const h = received[0]?.rawHeaders ?? [];
      assert.equal(h[h.findIndex((n) => n.toLowerCase() === 'host') + 1], 'files.test:8080');
    });

    it('Connection cannot remove Host, the forwarding headers, the request id or the body framing', async () => {
      received.length = 0;
      const body = '{"a":1}';
      await send(
        g.port,
        `POST /x HTTP/1.1\r\nHost: files.test\r\nConnection: close, host, x-forwarded-for, x-real-ip, x-request-id, content-length, content-type, x-drop-me\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nX-Drop-Me: 1\r\n\r\n${body}`,
      );
      const h = received[0]?.rawHeaders.map((x, i) => (i % 2 === 0 ? x.toLowerCase() : x)) ?? [];
      for (const name of ['host', 'x-forwarded-for', 'x-real-ip', 'x-request-id', 'content-length', 'content-type']) assert.ok(h.includes(name), name);
      assert.ok(!h.includes('x-drop-me'), 'other names in Connection are still removed');
      assert.equal(received[0]?.body.toString(), body);
    });
  });

  describe('headers', () => {
    const names = (raw: string[]) => raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());

    it('header names with an underscore are dropped by default (CGI reads X_Gatehouse_Subject as X-Gatehouse-Subject)', async () => {
      received.length = 0;
      await send(g.port, 'GET /x HTTP/1.1\r\nHost: files.test\r\nX_Gatehouse_Subject: admin\r\nX_Custom: 1\r\nConnection: close\r\n\r\n');
      const n = names(received[0]?.rawHeaders ?? []);
      assert.ok(!n.some((x) => x.includes('_')), n.join(','));
    });

    it('header_underscores: reject answers 400 bad_header; allow forwards them unless their dash spelling is controlled', async () => {
      received.length = 0;
      const r = await send(g.port, 'GET /x HTTP/1.1\r\nHost: strict.test\r\nX_Custom: 1\r\n\r\n');
      assert.equal(codeOf(r.text), 'bad_header');
      await send(g.port, 'GET /x HTTP/1.1\r\nHost: cgi.test\r\nX_Gatehouse_Subject: admin\r\nX_Forwarded_For: 1.2.3.4\r\nX_Real_IP: 1.2.3.4\r\nX_Custom: 1\r\nConnection: close\r\n\r\n');
      assert.equal(received.length, 1);
      const n = names(received[0]?.rawHeaders ?? []);
      assert.ok(n.includes('x_custom'));
      for (const bad of ['x_gatehouse_subject', 'x_forwarded_for', 'x_real_ip']) assert.ok(!n.includes(bad), bad);
    });

    it('client-IP, method-override and URL-override headers from the client never reach the upstream; gatehouse sets X-Real-IP', async () => {
      received.length = 0;
      const spoof = ['X-Real-IP', 'True-Client-IP', 'CF-Connecting-IP', 'X-Client-IP', 'X-Cluster-Client-IP', 'Fastly-Client-IP', 'Forwarded-For', 'X-Forwarded-Port', 'X-Original-URL', 'X-Rewrite-URL', 'X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override', 'X-Original-Host', 'X-Host'];
      await send(g.port, `GET /x HTTP/1.1\r\nHost: files.test\r\n${spoof.map((h) => `${h}: 10.0.0.1`).join('\r\n')}\r\nConnection: close\r\n\r\n`);
      const raw = received[0]?.rawHeaders ?? [];
      const got = new Map<string, string[]>();
      for (let i = 0; i < raw.length; i += 2) got.set((raw[i] as string).toLowerCase(), [...(got.get((raw[i] as string).toLowerCase()) ?? []), raw[i + 1] as string]);
      for (const h of spoof) if (h !== 'X-Real-IP') assert.ok(!got.has(h.toLowerCase()), h);
      assert.deepEqual(got.get('x-real-ip'), [OUTSIDE]);
      assert.deepEqual(got.get('x-forwarded-for'), [OUTSIDE]);
    });

    it('header value bytes reach the upstream as received (obs-text is not re-encoded)', async () => {
      received.length = 0;
      await send(g.port, Buffer.concat([Buffer.from('GET /x HTTP/1.1\r\nHost: files.test\r\nX-Bytes: a'), Buffer.from([0xc3, 0xa9, 0xff]), Buffer.from('b\r\nConnection: close\r\n\r\n')]));
      const raw = received[0]?.rawHeaders ?? [];
      const v = raw[raw.findIndex((n) => n.toLowerCase() === 'x-bytes') + 1] as string;
      assert.deepEqual([...Buffer.from(v, 'latin1')], [0x61, 0xc3, 0xa9, 0xff, 0x62]);
    });
  });

  describe('body read by policy', () => {
    const post = (body: string | Buffer, headers = 'Content-Type: application/json\r\n') => {
      const b = typeof body === 'string' ? Buffer.from(body) : body;
      return send(g.port, Buffer.concat([Buffer.from(`POST /v1 HTTP/1.1\r\nHost: body.test\r\n${headers}Content-Length: ${b.length}\r\nConnection: close\r\n\r\n`), b]));
    };

    it('only a body with exactly one reading is evaluated; anything else is refused, never read as "no fields"', async () => {
      received.length = 0;
      const cases: Array<[string | Buffer, string, string]> = [
        ['{"model":"ok","model":"forbidden"}', 'Content-Type: application/json\r\n', 'invalid_body'],
        ['{"model":"ok","Model":"forbidden"}', 'Content-Type: application/json\r\n', 'invalid_body'],
        ['{"model":"ok","mod\\u0065l":"forbidden"}', 'Content-Type: application/json\r\n', 'invalid_body'],
        [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"forbidden"}')]), 'Content-Type: application/json\r\n', 'invalid_body'],
        [Buffer.from('{"model":"forbidden"}', 'utf16le'), 'Content-Type: application/json\r\n', 'invalid_body'],
        ['{"model":"forbidden"}', 'Content-Type: application/json; charset=utf-16\r\n', 'unsupported_media_type'],
        ['model=forbidden', 'Content-Type: application/x-www-form-urlencoded\r\n', 'unsupported_media_type'],
        ['{"model":"forbidden"}', 'Content-Type: text/plain\r\n', 'unsupported_media_type'],
        [gzipSync('{"model":"forbidden"}'), 'Content-Type: application/json\r\nContent-Encoding: gzip\r\n', 'unsupported_media_type'],
        ['{"model":["forbidden"]}', 'Content-Type: application/json\r\n', 'invalid_body'],
        ['{"model":null}', 'Content-Type: application/json\r\n', 'invalid_body'],
        ['[{"model":"forbidden"}]', 'Content-Type: application/json\r\n', 'invalid_body'],
        ['{"model":"forbidden"}', 'Content-Type: application/json\r\n', 'policy_denied'],
      ];
      for (const [body, headers, code] of cases) {
        const r = await post(body, headers);
        assert.equal(codeOf(r.text), code, `${String(body)} with ${headers.trim()}`);
      }
      assert.equal(received.length, 0, 'nothing was forwarded');
      const ok = '{"model":"fine","messages":[{"role":"user","content":"caf\u00e9"}]}';
      assert.deepEqual(statuses((await post(ok)).text), [200]);
      assert.equal(received[0]?.body.toString(), ok, 'forwarded byte for byte');
    });
  });

  describe('connections', () => {
    it('a request pipelined behind one the IP filter dropped is neither proxied nor lost: it is logged as connection_closed', async () => {
      received.length = 0;
      const r = await send(g.port, 'GET /admin/secret HTTP/1.1\r\nHost: files.test\r\n\r\nGET /public-after-drop HTTP/1.1\r\nHost: files.test\r\n\r\n');
      assert.equal(r.bytes.length, 0, 'zero bytes');
      await new Promise((ok) => setTimeout(ok, 200));
      assert.equal(seen((x) => x.url === '/public-after-drop'), 0);
      assert.ok(await until(() => g.logs.some((l) => l.msg === 'request' && l.code === 'connection_closed' && l.path === '/public-after-drop'), 3000));
      assert.ok(await until(() => g.gw.ctx.inflight === 0, 3000), 'nothing stays in flight');
    });

    it('after an answer with Connection: close, nothing more is read or proxied (RFC 9112 §9.6)', async () => {
      received.length = 0;
      // The 413 closes the connection; the second request must not run.
      const big = 'x'.repeat(2048);
      const r = await send(g.port, `POST /big HTTP/1.1\r\nHost: files.test\r\nContent-Length: ${big.length}\r\n\r\n${big}GET /after-close HTTP/1.1\r\nHost: files.test\r\n\r\n`);
      assert.deepEqual(statuses(r.text), [413]);
      assert.match(r.text, /Connection: close/i);
      assert.equal(seen((x) => x.url === '/after-close'), 0);
      // The client's own Connection: close: the request behind it is not processed.
      const c = await send(g.port, 'GET /first HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\nGET /second HTTP/1.1\r\nHost: files.test\r\n\r\n');
      assert.deepEqual(statuses(c.text), [200]);
      assert.equal(seen((x) => x.url === '/second'), 0);
      assert.equal(seen((x) => x.url === '/first'), 1);
    });

    it('pipelined requests on a kept-alive connection are processed in order, one at a time', async () => {
      received.length = 0;
      const r = await send(g.port, 'GET /p1 HTTP/1.1\r\nHost: files.test\r\n\r\nGET /p2 HTTP/1.1\r\nHost: files.test\r\n\r\nGET /p3 HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n');
      assert.deepEqual(statuses(r.text), [200, 200, 200]);
      assert.deepEqual(received.map((x) => x.url), ['/p1', '/p2', '/p3']);
    });

    it('a chunked body over the limit is answered 413 with Connection: close, and the connection closes', async () => {
      const chunk = 'a'.repeat(600);
      const r = await send(g.port, `POST /chunked HTTP/1.1\r\nHost: files.test\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\nGET /after-413 HTTP/1.1\r\nHost: files.test\r\n\r\n`);
      const head = parseHead(r.bytes);
      assert.equal(head.status, 413);
      assert.equal(head.headers.connection, 'close');
      assert.ok(r.closed);
      assert.equal(seen((x) => x.url === '/after-413'), 0);
    });

    it('a Transfer-Encoding other than exactly chunked is answered 501 and closes', async () => {
      received.length = 0;
      const r = await send(g.port, 'POST /te HTTP/1.1\r\nHost: files.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n');
      assert.deepEqual(statuses(r.text), [501]);
      assert.equal(codeOf(r.text), 'unsupported_transfer_encoding');
      assert.equal(received.length, 0);
    });

    it('a request the parser rejects gets a request log line (stage parser) like any other exchange', async () => {
      const r = await send(g.port, 'GET /x HTTP/1.1\r\nHost: files.test\r\nBad Header: x\r\n\r\n');
      assert.deepEqual(statuses(r.text), [400]);
      const rid = /X-Request-Id: ([0-9a-f-]+)/i.exec(r.text)?.[1];
      assert.ok(await until(() => g.logs.some((l) => l.msg === 'request' && l.stage === 'parser' && l.req_id === rid && l.status === 400), 3000));
    });
  });

  describe('upgrades', () => {
    it('Upgrade: h2c is never a tunnel: the request is answered as a plain request and the connection closes', async () => {
      received.length = 0;
      const r = await send(
        g.port,
        'GET /h2c HTTP/1.1\r\nHost: files.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: files.test\r\n\r\n',
      );
      assert.deepEqual(statuses(r.text), [200]);
      assert.ok(r.closed);
      assert.deepEqual(received.map((x) => x.url), ['/h2c']);
      const n = (received[0]?.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((x) => x.toLowerCase());
      assert.ok(!n.includes('upgrade') && !n.includes('http2-settings'), n.join(','));
    });

    it('an Upgrade the site does not allow, with a body, is refused', async () => {
      received.length = 0;
      const r = await send(g.port, 'POST /h2c HTTP/1.1\r\nHost: files.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nhi');
      assert.deepEqual(statuses(r.text), [400]);
      assert.equal(received.length, 0);
    });
  });
});
