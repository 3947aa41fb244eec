/**
 * Operations that speak up (docs/operations.md#dependency-states): each dependency going
 * down is one `warn` log event and each recovery one `info`, however many requests fail
 * meanwhile, and the requests that need it are refused (fail closed) in between.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import postgres from 'postgres';
import { baseConfig, request, sleep, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { needRedisServer, startPrivateRedis, type PrivateRedis } from '../testing/redis-server.js';
import { needPostgres, POSTGRES_URL } from '../testing/services.js';
import { bearer, keyDir, makeKey, sign, type TestKey } from '../testing/tokens.js';

function events(g: TestGateway, dependency: string): Array<[unknown, unknown]> {
  return g.logs.filter((l) => l.dependency === dependency).map((l) => [l.level, l.event]);
}

async function until(what: string, ms: number, f: () => Promise<boolean> | boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Requests in a loop, several at a time, until stopped: the load an outage happens under. */
function load(url: string, headers: () => Promise<Record<string, string>> | Record<string, string> = () => ({})): { stop(): Promise<Map<number, number>>; codes: Set<string> } {
  let running = true;
  const tally = new Map<number, number>();
  const codes = new Set<string>();
  const worker = async () => {
    while (running) {
      const r = await request(url, { headers: await headers() }).catch(() => null);
      if (r === null) continue;
      tally.set(r.status, (tally.get(r.status) ?? 0) + 1);
      if (r.status >= 500) codes.add((JSON.parse(r.body) as { error: { code: string } }).error.code);
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  return {
    codes,
    async stop() {
      running = false;
      await Promise.all(workers);
      return tally;
    },
  };
}

describe('dependency events', () => {
  let up: Upstream;
  before(async () => {
    up = await startUpstream();
  });
  after(async () => {
    await up.close();
  });

  it('Redis stopped under load: one dependency_down (warn), 503 rate_limit_unavailable, restarted: one dependency_up (info)', async (t) => {
    if (!needRedisServer(t)) return;
    const redis: PrivateRedis = await startPrivateRedis();
    const g = await startGateway(
      baseConfig(up.url, { rate_limits: [{ id: 'general', limit: 100000, window: '1m' }] }, { state: { store: 'redis', redis: { url: redis.url, command_timeout: '300ms', connect_timeout: '1s' } } }),
    );
    try {
      await until('Redis to be used', 10_000, async () => (await request(`${g.url}/`)).status === 200);
      const l = load(`${g.url}/`);
      await sleep(200);
      await redis.stop();
      await until('requests to fail closed', 10_000, () => l.codes.has('rate_limit_unavailable'));
      await sleep(1500); // reconnect attempts and failed requests keep coming: still one event
      assert.deepEqual(events(g, 'rate_limit_store'), [['warn', 'dependency_down']]);
      assert.deepEqual([...l.codes], ['rate_limit_unavailable']);
      let metrics = await (await fetch(`${g.adminUrl}/metrics`)).text();
      assert.match(metrics, /gatehouse_dependency_up\{dependency="rate_limit_store"\} 0/);
      await redis.start();
      await until('recovery', 15_000, () => events(g, 'rate_limit_store').length === 2);
      await sleep(500);
      const tally = await l.stop();
      assert.ok((tally.get(503) ?? 0) > 0 && (tally.get(200) ?? 0) > 0, JSON.stringify([...tally]));
      assert.deepEqual(events(g, 'rate_limit_store'), [
        ['warn', 'dependency_down'],
        ['info', 'dependency_up'],
      ]);
      assert.equal((await request(`${g.url}/`)).status, 200);
      metrics = await (await fetch(`${g.adminUrl}/metrics`)).text();
      assert.match(metrics, /gatehouse_dependency_up\{dependency="rate_limit_store"\} 1/);
      assert.match(metrics, /gatehouse_dependency_transitions_total\{dependency="rate_limit_store",state="down"\} 1/);
      assert.match(metrics, /gatehouse_dependency_transitions_total\{dependency="rate_limit_store",state="up"\} 1/);
    } finally {
      await g.close();
      await redis.stop();
    }
    // A clean shutdown is not an outage.
    assert.equal(events(g, 'rate_limit_store').length, 2);
  });

  it('JWKS URL unreachable: one dependency_down for jwks:<url>, stale keys refused (503), back: one dependency_up', async () => {
    const dir = keyDir();
    const k: TestKey = makeKey(dir, 'd1', 'ES256');
    let serving = true;
    const server: Server = createServer((_req, res) => {
      if (!serving) return res.destroy();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [{ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, alg: k.alg, use: 'sig' }] }));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    const g = await startGateway(
      baseConfig(up.url, { auth: {} }, { auth: { issuers: [{ id: 'idp', iss: 'https://issuer.test', jwks_url: url, jwks_refresh: '200ms', jwks_max_stale: '1s' }] }, identities: { unknown_identity: 'allow' } }),
    );
    const dep = `jwks:${url}`;
    try {
      assert.equal((await request(`${g.url}/x`, { headers: bearer(await sign(k)) })).status, 200);
      serving = false;
      const l = load(`${g.url}/x`, async () => bearer(await sign(k)));
      await until('stale keys to be refused', 10_000, () => l.codes.has('token_keys_unavailable'));
      await sleep(800);
      assert.deepEqual(events(g, dep), [['warn', 'dependency_down']]);
      serving = true;
      await until('recovery', 10_000, () => events(g, dep).length === 2);
      await l.stop();
      assert.deepEqual(events(g, dep), [
        ['warn', 'dependency_down'],
        ['info', 'dependency_up'],
      ]);
      assert.equal((await request(`${g.url}/x`, { headers: bearer(await sign(k)) })).status, 200);
    } finally {
      await g.close();
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    }
  });

  it('PostgreSQL identity registry refusing connections: one dependency_down for identity_registry, 503, allowed again: one dependency_up', async (t) => {
    if (!(await needPostgres(t))) return;
    const db = `gh_dep_${randomBytes(5).toString('hex')}`;
    const admin = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
    await admin.unsafe(`CREATE DATABASE ${db}`);
    const dbUrl = new URL(POSTGRES_URL);
    dbUrl.pathname = `/${db}`;
    const dir = keyDir();
    const k = makeKey(dir, 'p1', 'ES256');
    const g = await startGateway(
      baseConfig(up.url, { auth: {} }, {
        auth: { issuers: [{ id: 'idp', iss: 'https://issuer.test', keys: [{ kid: 'p1', file: k.file }] }] },
        state: { store: 'memory', dir, postgres: { url: dbUrl.href, schema: 'gh', connect_timeout: '1s' } },
        identities: { store: 'postgres', unknown_identity: 'allow', refresh_interval: '100ms', max_staleness: '1s' },
      }),
    );
    try {
      await until('the registry to be current', 10_000, async () => (await request(`${g.url}/x`, { headers: bearer(await sign(k)) })).status === 200);
      // The database goes away for the gateway: new connections refused, open ones ended.
      await admin.unsafe(`ALTER DATABASE ${db} ALLOW_CONNECTIONS false`);
      await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${db}`;
      const l = load(`${g.url}/x`, async () => bearer(await sign(k)));
      await until('authenticated requests to fail closed', 10_000, () => l.codes.has('identity_registry_unavailable'));
      await sleep(1200);
      assert.deepEqual(events(g, 'identity_registry'), [['warn', 'dependency_down']]);
      await admin.unsafe(`ALTER DATABASE ${db} ALLOW_CONNECTIONS true`);
      await until('recovery', 15_000, () => events(g, 'identity_registry').length === 2);
      await l.stop();
      assert.deepEqual(events(g, 'identity_registry'), [
        ['warn', 'dependency_down'],
        ['info', 'dependency_up'],
      ]);
    } finally {
      await g.close();
      await admin.unsafe(`ALTER DATABASE ${db} ALLOW_CONNECTIONS true`).catch(() => undefined);
      await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${db}`.catch(() => undefined);
      await admin.unsafe(`DROP DATABASE IF EXISTS ${db}`);
      await admin.end();
    }
  });
});
