import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { baseConfig, rawExchange, request, SECURITY_HEADERS, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';

function assertSecurityHeaders(headers: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(headers[k], v, `header ${k}`);
  assert.equal(headers['server'], undefined, 'no Server header');
}

describe('proxy: forwarding and headers', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream((req, res) => {
      if (req.url === '/hop') {
        res.writeHead(200, { connection: 'x-private', 'x-private': 'secret', 'keep-alive': 'timeout=99', 'x-kept': 'yes' });
        res.end('ok');
        return;
      }
      const body = JSON.stringify({ url: req.url, headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json', server: 'upstream/1.0', 'x-powered-by': 'php', 'x-frame-options': 'ALLOWALL' });
      res.end(body);
    });
    gw = await startGateway(
      baseConfig(up.url, {}, {
        sites: [
          { id: 'app', hosts: ['127.0.0.1', 'localhost'], upstream: { urls: [up.url] } },
          { id: 'strict', hosts: ['strict.test'], upstream: { urls: [up.url] }, headers: { set: { 'X-Frame-Options': 'DENY', 'Content-Security-Policy': "default-src 'none'" }, remove: ['X-Kept'] } },
          { id: 'api', hosts: ['127.0.0.1'], path_prefix: '/api', upstream: { urls: [up.url] }, headers: { set: { 'X-Site': 'api' } } },
        ],
        // The 421 answer (the default closes the connection instead: limits.test.ts).
        http: { unknown_host: 'misdirected' },
      }),
    );
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('proxies with the security headers, a request id, and without Server/X-Powered-By', async () => {
    const r = await request(`${gw.url}/hello?x=1`);
    assert.equal(r.status, 200);
    assertSecurityHeaders(r.headers);
    assert.equal(r.headers['x-powered-by'], undefined);
    // The gateway's value wins over the upstream's.
    assert.equal(r.headers['x-frame-options'], 'SAMEORIGIN');
    assert.match(String(r.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const seen = JSON.parse(r.body) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/hello?x=1');
    assert.equal(seen.headers['x-request-id'], r.headers['x-request-id']);
  });

  it('replaces client-supplied X-Forwarded-* from an untrusted peer', async () => {
    const r = await request(`${gw.url}/`, { headers: { 'X-Forwarded-For': '6.6.6.6', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'evil.test', Forwarded: 'for=6.6.6.6', 'X-Request-Id': 'mine' } });
    const h = (JSON.parse(r.body) as { headers: Record<string, string> }).headers;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], `127.0.0.1:${gw.port}`, 'the Host the client sent');
    assert.equal(h['forwarded'], undefined);
    assert.notEqual(h['x-request-id'], 'mine');
  });

  it('strips hop-by-hop request headers and those named in Connection', async () => {
    const r = await request(`${gw.url}/`, { headers: { Connection: 'keep-alive, X-Hop', 'X-Hop': 'secret', TE: 'trailers', 'Proxy-Authorization': 'Basic abc', 'X-End': 'kept' } });
    const h = (JSON.parse(r.body) as { headers: Record<string, string> }).headers;
    assert.equal(h['x-hop'], undefined);
    assert.equal(h['te'], undefined);
    assert.equal(h['proxy-authorization'], undefined);
    assert.equal(h['x-end'], 'kept');
  });

  it('strips hop-by-hop response headers and those named in Connection', async () => {
    const r = await request(`${gw.url}/hop`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-private'], undefined);
    assert.notEqual(r.headers['keep-alive'], 'timeout=99');
    assert.equal(r.headers['x-kept'], 'yes');
  });

  it('applies per-site header overrides and removals', async () => {
    const r = await request(`${gw.url}/hop`, { headers: { Host: 'strict.test' } });
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['content-security-policy'], "default-src 'none'");
    assert.equal(r.headers['x-kept'], undefined);
    assert.equal(r.headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP');
  });

  it('routes by the longest path prefix, matched on the normalized path', async () => {
    assert.equal((await request(`${gw.url}/api/x`)).headers['x-site'], 'api');
    assert.equal((await request(`${gw.url}/API/x`)).headers['x-site'], 'api');
    assert.equal((await request(`${gw.url}/x/../api/x`)).headers['x-site'], 'api');
    assert.equal((await request(`${gw.url}/apix`)).headers['x-site'], undefined);
  });

  it('matches the host case-insensitively, ignoring the port and a trailing dot', async () => {
    const r = await request(`${gw.url}/`, { headers: { Host: 'STRICT.test.:1234' } });
    assert.equal(r.headers['x-frame-options'], 'DENY');
  });

  it('answers 421 for an unknown host, never proxying, with headers and a JSON error', async () => {
    const before = up.seen.length;
    const r = await request(`${gw.url}/`, { headers: { Host: 'nobody.test' } });
    assert.equal(r.status, 421);
    assertSecurityHeaders(r.headers);
    const body = JSON.parse(r.body) as { error: { code: string; message: string; request_id: string } };
    assert.equal(body.error.code, 'misdirected_request');
    assert.equal(body.error.request_id, r.headers['x-request-id']);
    assert.equal(up.seen.length, before);
  });

  it('answers 400 for a path with invalid percent-encoding', async () => {
    const r = await rawExchange(gw.port, 'GET /a%zz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    const text = r.bytes.toString();
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /"code":"bad_request"/);
  });

  it('answers 400 (never proxies) for two Host headers or a malformed Host', async () => {
    const before = up.seen.length;
    for (const head of ['Host: 127.0.0.1\r\nHost: strict.test', 'Host: 127.0.0.1 x', 'Host: a/b']) {
      const r = await rawExchange(gw.port, `GET / HTTP/1.1\r\n${head}\r\nConnection: close\r\n\r\n`);
      assert.match(r.bytes.toString(), /^HTTP\/1\.1 400 /, head);
      assert.match(r.bytes.toString(), /"code":"bad_request"/);
    }
    assert.equal(up.seen.length, before);
  });

  it('accepts absolute-form targets and routes by their authority', async () => {
    const r = await rawExchange(gw.port, 'GET http://strict.test/abs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    const text = r.bytes.toString();
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /X-Frame-Options: DENY/i);
  });
});

describe('client IP through trusted proxies', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(baseConfig(up.url, { ip_filter: { allow: ['203.0.113.0/24'] } }, { trusted_proxies: ['127.0.0.1', '10.0.0.0/8'] }));
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('walks X-Forwarded-For right to left past trusted hops, and appends the peer', async () => {
    const r = await request(`${gw.url}/`, { headers: { 'X-Forwarded-For': '198.51.100.9, 203.0.113.7, 10.1.2.3', 'X-Forwarded-Proto': 'https' } });
    assert.equal(r.status, 200);
    const h = (JSON.parse(r.body) as { headers: Record<string, string> }).headers;
    assert.equal(h['x-forwarded-for'], '198.51.100.9, 203.0.113.7, 10.1.2.3, 127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'https');
    const line = gw.logs.find((l) => l.req_id === r.headers['x-request-id']);
    assert.equal(line?.client_ip, '203.0.113.7');
    assert.equal(line?.peer_ip, '127.0.0.1');
  });

  it('uses the resolved client for the IP filter (a spoofed left-most entry does not help)', async () => {
    const r = await rawExchange(gw.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 203.0.113.7, 192.0.2.1\r\n\r\n');
    assert.equal(r.bytes.length, 0, 'zero bytes written');
    assert.equal(r.closed, true);
  });

  it('understands IPv6 and IPv4-mapped entries', async () => {
    const r = await request(`${gw.url}/`, { headers: { 'X-Forwarded-For': '::ffff:203.0.113.5' } });
    assert.equal(r.status, 200);
    const line = gw.logs.find((l) => l.req_id === r.headers['x-request-id']);
    assert.equal(line?.client_ip, '203.0.113.5');
  });
});

describe('Expect handling', () => {
  it('sends 100 Continue only after admission; other expectations get 417 after the filters', async () => {
    const up = await startUpstream();
    const open = await startGateway(baseConfig(up.url));
    const closed = await startGateway(baseConfig(up.url, { ip_filter: { allow: ['10.0.0.0/8'] } }));
    try {
      const ok = await rawExchange(open.port, 'POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n', 1000);
      assert.match(ok.bytes.toString(), /^HTTP\/1\.1 100 Continue\r\n/);
      const weird = await rawExchange(open.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: teapot\r\nConnection: close\r\n\r\n');
      assert.match(weird.bytes.toString(), /^HTTP\/1\.1 417 /);
      assert.match(weird.bytes.toString(), /"code":"expectation_failed"/);
      for (const expect of ['100-continue', 'teapot']) {
        const denied = await rawExchange(closed.port, `POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nExpect: ${expect}\r\n\r\n`);
        assert.equal(denied.bytes.length, 0, `a filtered client gets zero bytes (Expect: ${expect})`);
      }
    } finally {
      await open.close();
      await closed.close();
      await up.close();
    }
  });
});
