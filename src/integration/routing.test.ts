/**
 * Routing: the catch-all site, strip_prefix (controls decide on the path the client sent,
 * the upstream gets the canonical path minus the prefix), upstream base paths, and
 * redirects as a site action (docs/lifecycle.md#strip_prefix).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../config/load.js';
import { baseConfig, request, startGateway, startUpstream, writeConfig, type TestGateway, type Upstream } from '../testing/harness.js';
import { keyDir, makeKey, sign } from '../testing/tokens.js';

const seenUrl = (r: { body: string }) => (JSON.parse(r.body) as { url: string }).url;

describe('routing', () => {
  let app: Upstream;
  let other: Upstream;
  let gw: TestGateway;
  const key = makeKey(keyDir(), 'k1');
  before(async () => {
    app = await startUpstream();
    other = await startUpstream();
    gw = await startGateway(
      baseConfig(app.url, {}, {
        auth: { issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: key.kid, file: key.file }] }] },
        identities: { unknown_identity: 'allow' },
        sites: [
          { id: 'app', hosts: ['app.test'], upstream: { urls: [app.url] } },
          {
            id: 'api',
            hosts: ['app.test'],
            path_prefix: '/api',
            strip_prefix: '/api',
            upstream: { urls: [`${app.url}/v2`] },
            rate_limits: [
              { id: 'login', limit: 1, window: '1m', paths: ['/api/login*'] },
              // Written for the stripped path: it never applies, because controls see the client's path.
              { id: 'stripped', limit: 1, window: '1m', paths: ['/items*'] },
            ],
            auth: { paths: ['/api/private*'] },
          },
          { id: 'based', hosts: ['based.test'], upstream: { urls: [`${app.url}/base/`] } },
          { id: 'old', hosts: ['old.test'], redirect: { to: 'https://new.test{uri}', status: 301 } },
          { id: 'moved', hosts: ['moved.test'], path_prefix: '/docs', strip_prefix: '/docs', redirect: { to: '/manual{path}', status: 308 } },
          { id: 'any', hosts: ['*'], upstream: { urls: [other.url] } },
        ],
      }),
    );
  });
  after(async () => {
    await gw.close();
    await app.close();
    await other.close();
  });

  it('the catch-all site answers hosts nothing else serves, and paths the host does not cover', async () => {
    const r = await request(`${gw.url}/x`, { headers: { host: 'unknown.example' } });
    assert.equal(r.status, 200);
    assert.equal(other.seen.at(-1)?.url, '/x');
    assert.equal(other.seen.at(-1)?.headers.host, 'unknown.example', 'the Host routed on');
    const known = await request(`${gw.url}/y`, { headers: { host: 'app.test' } });
    assert.equal(known.status, 200);
    assert.equal(app.seen.at(-1)?.url, '/y');
  });

  it('strip_prefix: the upstream gets the canonical path minus the prefix behind its base path; the query is kept', async () => {
    const r = await request(`${gw.url}/api/items/7?full=1`, { headers: { host: 'app.test' } });
    assert.equal(r.status, 200);
    assert.equal(seenUrl(r), '/v2/items/7?full=1');
    assert.equal(seenUrl(await request(`${gw.url}/api`, { headers: { host: 'app.test' } })), '/v2/');
    assert.equal(seenUrl(await request(`${gw.url}/api/./a//b/../c`, { headers: { host: 'app.test' } })), '/v2/a/c', 'canonical: dot segments and // resolved');
    // The rule written for the stripped path never matched (two requests above passed /items).
    assert.equal(seenUrl(await request(`${gw.url}/api/items/8`, { headers: { host: 'app.test' } })), '/v2/items/8');
  });

  it('strip_prefix: rate-limit path classes decide on the path the client sent, in every spelling', async () => {
    const first = await request(`${gw.url}/api/login`, { headers: { host: 'app.test' } });
    assert.equal(first.status, 200);
    assert.equal(seenUrl(first), '/v2/login');
    const second = await request(`${gw.url}/API/Login`, { headers: { host: 'app.test' } });
    assert.equal(second.status, 429, 'another spelling of /api/login counts against the same rule');
  });

  it('strip_prefix: auth path classes decide on the path the client sent', async () => {
    assert.equal((await request(`${gw.url}/api/private/x`, { headers: { host: 'app.test' } })).status, 401);
    assert.equal((await request(`${gw.url}/api/Private/x`, { headers: { host: 'app.test' } })).status, 401);
    const t = await sign(key);
    const ok = await request(`${gw.url}/api/private/x`, { headers: { host: 'app.test', authorization: `Bearer ${t}` } });
    assert.equal(ok.status, 200);
    assert.equal(seenUrl(ok), '/v2/private/x');
    assert.equal((await request(`${gw.url}/private/x`, { headers: { host: 'app.test' } })).status, 200, 'the site without auth: /private is not /api/private');
  });

  it('an upstream URL with a base path prefixes every forwarded path', async () => {
    const r = await request(`${gw.url}/a/b?c=d`, { headers: { host: 'based.test' } });
    assert.equal(seenUrl(r), '/base/a/b?c=d');
  });

  it('a redirect site answers with its status and Location, the security headers, and forwards nothing', async () => {
    const before = app.seen.length + other.seen.length;
    const r = await request(`${gw.url}/p/q?x=1`, { headers: { host: 'old.test' } });
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'https://new.test/p/q?x=1');
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    const m = await request(`${gw.url}/docs/intro?v=2`, { headers: { host: 'moved.test' } });
    assert.equal(m.status, 308);
    assert.equal(m.headers.location, '/manual/intro', '{path} is the stripped path, without the query');
    assert.equal(app.seen.length + other.seen.length, before);
  });

  it('check refuses two catch-all sites, a strip_prefix outside path_prefix, a site with both or neither action, a non-canonical base path and two members with one id', () => {
    const file = writeConfig({
      sites: [
        { id: 'a', hosts: ['*'], upstream: { urls: ['http://127.0.0.1:1'] } },
        { id: 'b', hosts: ['*'], path_prefix: '/b', upstream: { urls: ['http://127.0.0.1:1'] } },
        { id: 'c', hosts: ['c.test'], path_prefix: '/c', strip_prefix: '/d', upstream: { urls: ['http://127.0.0.1:1/x//y'] } },
        { id: 'd', hosts: ['d.test'], redirect: { to: '/x' }, upstream: { urls: ['http://127.0.0.1:1'] } },
        { id: 'e', hosts: ['e.test'] },
        { id: 'f', hosts: ['f.test'], upstream: { urls: ['http://127.0.0.1:1', { url: 'http://127.0.0.1:1/other' }] } },
      ],
    });
    let problems: ReadonlyArray<{ path: string; message: string }> = [];
    try {
      loadConfig(file);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      problems = err.problems;
    }
    const paths = problems.map((p) => p.path);
    for (const p of ['sites[1].hosts', 'sites[2].strip_prefix', 'sites[3].redirect', 'sites[4]', 'sites[5].upstream.urls[1]']) assert.ok(paths.includes(p), `${p} in ${paths.join(', ')}`);
    assert.ok(problems.some((p) => p.path === 'sites[2].upstream.urls[0]' && /canonical/.test(p.message)), 'the base path /x//y');
  });
});
