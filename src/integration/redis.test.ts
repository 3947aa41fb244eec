import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { baseConfig, request, sleep, spawnGateway, startGateway, startUpstream, waitReady, type Upstream } from '../testing/harness.js';
import { needRedisServer, startPrivateRedis, type PrivateRedis } from '../testing/redis-server.js';
import { needRedis, REDIS_URL } from '../testing/services.js';

describe('two gateway processes sharing one Redis enforce one limit together', () => {
  let up: Upstream;
  before(async () => {
    up = await startUpstream();
  });
  after(async () => {
    await up.close();
  });

  it('allows exactly N across both instances, then both refuse', async (t) => {
    if (!(await needRedis(t))) return;
    const prefix = `gatehouse-test:${randomBytes(6).toString('hex')}:`;
    const cfg = baseConfig(up.url, { rate_limits: [{ id: 'general', limit: 20, window: '1m' }] }, { state: { store: 'redis', redis: { url: REDIS_URL, key_prefix: prefix, command_timeout: '5s' } } });
    const a = await spawnGateway(cfg);
    const b = await spawnGateway(cfg);
    try {
      // Like a load balancer: traffic only once both have reached Redis (a loaded machine
      // can take a while to connect; before that they refuse with 503, fail-closed).
      await waitReady(a.adminPort);
      await waitReady(b.adminPort);
      // Interleave requests over both instances, concurrently.
      const statuses = await Promise.all(
        Array.from({ length: 40 }, (_, i) => request(`http://127.0.0.1:${i % 2 === 0 ? a.port : b.port}/`).then((r) => r.status)),
      );
      // One comparison of the whole tally, so a failure shows every status that came back.
      const tally: Record<string, number> = {};
      for (const s of statuses) tally[s] = (tally[s] ?? 0) + 1;
      assert.deepEqual(tally, { 200: 20, 429: 20 });
      // Either instance now refuses.
      assert.equal((await request(`http://127.0.0.1:${a.port}/`)).status, 429);
      assert.equal((await request(`http://127.0.0.1:${b.port}/`)).status, 429);
    } finally {
      assert.equal(await a.stop(), 0);
      assert.equal(await b.stop(), 0);
    }
  });
});

describe('Redis outage', () => {
  let up: Upstream;
  let redis: PrivateRedis | null = null;
  before(async () => {
    up = await startUpstream();
  });
  after(async () => {
    await redis?.stop();
    await up.close();
  });

  it('fails closed with 503 rate_limit_unavailable, fails open only where configured, and recovers by itself', async (t) => {
    if (!needRedisServer(t)) return;
    redis = await startPrivateRedis();
    const gw = await startGateway(
      baseConfig(up.url, {}, {
        state: { store: 'redis', redis: { url: redis.url, command_timeout: '200ms', connect_timeout: '500ms' } },
        sites: [
          { id: 'closed', hosts: ['127.0.0.1'], upstream: { urls: [up.url] }, rate_limits: [{ id: 'general', limit: 1000, window: '1m' }] },
          { id: 'open', hosts: ['localhost'], upstream: { urls: [up.url] }, rate_limits: [{ id: 'general', limit: 1000, window: '1m', on_store_error: 'allow' }] },
        ],
      }),
    );
    try {
      // Wait for the connection, then a normal decision.
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) {
        ok = (await request(`${gw.url}/`)).status === 200;
        if (!ok) await sleep(100);
      }
      assert.ok(ok, 'works while Redis is up');
      assert.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 200);

      await redis.stop();
      const refused = await request(`${gw.url}/`);
      assert.equal(refused.status, 503);
      assert.equal((JSON.parse(refused.body) as { error: { code: string } }).error.code, 'rate_limit_unavailable');
      const allowed = await request(`${gw.url}/`, { headers: { Host: 'localhost' } });
      assert.equal(allowed.status, 200);
      assert.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 503);
      const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      assert.match(metrics, /gatehouse_rate_limit_store_errors_total\{site="closed",action="refused"\} [1-9]/);
      assert.match(metrics, /gatehouse_rate_limit_store_errors_total\{site="open",action="allowed"\} [1-9]/);

      await redis.start();
      let recovered = false;
      for (let i = 0; i < 100 && !recovered; i++) {
        recovered = (await request(`${gw.url}/`)).status === 200;
        if (!recovered) await sleep(100);
      }
      assert.ok(recovered, 'recovers without a restart');
    } finally {
      await gw.close();
    }
  });
});
