import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { baseConfig, rawExchange, request, SECURITY_HEADERS, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';

/** A controllable clock: the gateway's rate limiter reads it. */
function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('edge rate limits (Atlas defaults: 100/min general, 10/min login)', () => {
  let up: Upstream;
  let gw: TestGateway;
  const c = clock();
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(
      baseConfig(up.url, {
        rate_limits: [
          { id: 'general', limit: 100, window: '1m' },
          { id: 'login', limit: 10, window: '1m', paths: ['/login*', '/api/login*'] },
        ],
      }),
      { now: c.now },
    );
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('refuses the 11th login in a minute with 429, Retry-After and RateLimit headers', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await request(`${gw.url}/login`);
      assert.equal(r.status, 200, `login ${i + 1}`);
      assert.equal(r.headers['ratelimit-policy'], '"general";q=100;w=60, "login";q=10;w=60');
      assert.equal(r.headers['ratelimit'], `"login";r=${9 - i};t=60`);
    }
    const r = await request(`${gw.url}/login`);
    assert.equal(r.status, 429);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(r.headers[k], v);
    assert.equal(r.headers['retry-after'], '60');
    assert.equal(r.headers['ratelimit'], '"login";r=0;t=60');
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'rate_limited');
  });

  it('counts every spelling of the login path against the login class', async () => {
    const spellings = ['/LOGIN', '/%6cogin', '//login', '/x/../login', '/./login;jsessionid=1', '/api/Login/', '/..;/login', '/api\\..\\login'];
    for (const p of spellings) {
      const r = await rawExchange(gw.port, `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      assert.match(r.bytes.toString(), /^HTTP\/1\.1 429 /, `spelling ${p} escaped the login class`);
    }
    // Spellings that upstreams read in different ways are refused before any limit (escaped_path: reject).
    for (const p of ['/%2e%2e/login', '/%2561pi/login', '/login%2f..%2flogin']) {
      const r = await rawExchange(gw.port, `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      assert.match(r.bytes.toString(), /^HTTP\/1\.1 400 [^]*"code":"ambiguous_path"/, `spelling ${p} was not refused`);
    }
  });

  it('a login request consumed the general budget too; refused ones consumed nothing', async () => {
    // 10 accepted logins so far, every other request was refused: 90 general left.
    const r = await request(`${gw.url}/other`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['ratelimit'], '"general";r=89;t=60');
  });

  it('Retry-After is accurate: after that many seconds the next login succeeds', async () => {
    const refused = await request(`${gw.url}/login`);
    assert.equal(refused.status, 429);
    const wait = Number(refused.headers['retry-after']);
    c.advance(wait * 1000 - 1);
    assert.equal((await request(`${gw.url}/login`)).status, 429, 'not before');
    c.advance(1);
    assert.equal((await request(`${gw.url}/login`)).status, 200, 'exactly then');
  });

  it('counts refusals in metrics by site and rule', async () => {
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(text, /gatehouse_rate_limit_refusals_total\{site="app",rule="login",mode="enforce"\} \d+/);
  });
});

describe('shadow mode', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(baseConfig(up.url, { rate_limits: [{ id: 'trial', limit: 2, window: '1m', shadow: true }] }), { now: clock().now });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('refuses nothing, but counts and logs what it would have refused', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await request(`${gw.url}/`)).status, 200);
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(text, /gatehouse_rate_limit_refusals_total\{site="app",rule="trial",mode="shadow"\} 3/);
    assert.equal(gw.logs.filter((l) => Array.isArray(l.rate_limit_shadow) && (l.rate_limit_shadow as string[]).includes('trial')).length, 3);
  });
});

describe('IP filter runs before the rate limiter', () => {
  let up: Upstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(baseConfig(up.url, { ip_filter: { allow: ['10.0.0.0/8'] }, rate_limits: [{ id: 'general', limit: 1, window: '1m' }] }));
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('a denied client gets a closed connection with zero bytes, never a 429', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await rawExchange(gw.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      assert.equal(r.bytes.length, 0);
      assert.equal(r.closed, true);
    }
    assert.equal(up.seen.length, 0);
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(text, /gatehouse_ip_filter_denials_total\{site="app",list="allow"\} 3/);
    assert.doesNotMatch(text, /gatehouse_rate_limit_refusals_total\{/);
  });

  it('deny wins over allow', async () => {
    const gw2 = await startGateway(baseConfig(up.url, { ip_filter: { allow: ['127.0.0.0/8'], deny: ['127.0.0.1'] } }));
    try {
      const r = await rawExchange(gw2.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      assert.equal(r.bytes.length, 0);
    } finally {
      await gw2.close();
    }
  });
});

describe('global IP filter', () => {
  it('closes denied connections before any HTTP parsing, even for garbage', async () => {
    const up = await startUpstream();
    const gw = await startGateway(baseConfig(up.url, {}, { ip_filter: { allow: ['192.0.2.0/24'] } }));
    try {
      const r = await rawExchange(gw.port, 'NOT HTTP AT ALL\r\n\r\n');
      assert.equal(r.bytes.length, 0);
      assert.equal(r.closed, true);
    } finally {
      await gw.close();
      await up.close();
    }
  });
});
