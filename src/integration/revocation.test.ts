/**
 * Revocation across two gateway processes sharing one (private) Redis: a revocation made
 * through instance A's admin API refuses the token on instance B; with Redis stopped both
 * fail closed (503); after Redis comes back EMPTY (restart without persistence) the
 * revocations made before are still enforced (instances write them back) and new ones
 * propagate again.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { baseConfig, request, spawnGateway, startUpstream, type Upstream } from '../testing/harness.js';
import { needRedisServer, redisServerAvailable, startPrivateRedis, type PrivateRedis } from '../testing/redis-server.js';
import { bearer, keyDir, makeKey, nowS, sign } from '../testing/tokens.js';

type Spawned = Awaited<ReturnType<typeof spawnGateway>>;

async function eventually<T>(f: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what} (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('revocation across two gateway processes sharing Redis', { concurrency: false }, () => {
  let redis: PrivateRedis | null = null;
  let up: Upstream;
  let a: Spawned;
  let b: Spawned;
  const dir = keyDir();
  const key = makeKey(dir, 'k1');
  const adminToken = randomBytes(24).toString('hex');
  const tokenFile = join(mkdtempSync(join(tmpdir(), 'gatehouse-admin-')), 'admin.token');
  writeFileSync(tokenFile, adminToken);
  chmodSync(tokenFile, 0o600);

  const status = async (g: Spawned, token: string) => {
    const r = await request(`http://127.0.0.1:${g.port}/x`, { headers: bearer(token) });
    return { status: r.status, code: r.status === 200 ? 'ok' : (JSON.parse(r.body) as { error: { code: string } }).error.code };
  };
  const revoke = async (g: Spawned, body: unknown) => {
    const r = await request(`http://127.0.0.1:${g.adminPort}/v1/revocations`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return r;
  };

  before(async () => {
    if (!redisServerAvailable()) {
      if (process.env.CI) throw new Error('redis-server binary not found (required in CI)');
      return;
    }
    redis = await startPrivateRedis();
    up = await startUpstream();
    const prefix = `gatehouse-test:${randomBytes(4).toString('hex')}:`;
    const cfg = () =>
      baseConfig(
        up.url,
        { auth: {} },
        {
          admin: { listen: '127.0.0.1:0', token_file: tokenFile },
          log: { level: 'info' },
          state: { store: 'redis', redis: { url: (redis as PrivateRedis).url, key_prefix: prefix, command_timeout: '1s' } },
          auth: { issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: 'k1', file: key.file }] }] },
          revocation: { max_staleness: '1s' },
          identities: { unknown_identity: 'allow' },
        },
      );
    a = await spawnGateway(cfg());
    b = await spawnGateway(cfg());
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    await up?.close();
    await redis?.stop();
  });

  it('a jti revoked on A is refused on B; a subject revocation covers every earlier token of that subject', async (t) => {
    if (redis === null || !needRedisServer(t)) return;
    const t1 = await sign(key, { sub: 'agent-1' });
    const t2 = await sign(key, { sub: 'agent-1' });
    const t3 = await sign(key, { sub: 'agent-2' });
    await eventually(() => status(b, t1), (s) => s.status === 200, 'B serves t1');
    assert.equal((await status(a, t1)).status, 200);
    const jti = (JSON.parse(Buffer.from(t1.split('.')[1] as string, 'base64url').toString()) as { jti: string }).jti;
    assert.equal((await revoke(a, { jti })).status, 201);
    await eventually(() => status(b, t1), (s) => s.code === 'token_revoked', 'B refuses the revoked jti', 1000);
    assert.equal((await status(a, t1)).code, 'token_revoked');
    assert.equal((await status(b, t2)).status, 200, 'another token of the same subject is untouched');

    assert.equal((await revoke(a, { subject: 'agent-1' })).status, 201);
    await eventually(() => status(b, t2), (s) => s.code === 'token_revoked', 'B refuses every earlier token of agent-1', 1000);
    assert.equal((await status(b, t3)).status, 200, 'other subjects are untouched');
    const later = await sign(key, { sub: 'agent-1', iat: nowS() + 2 });
    assert.equal((await status(b, later)).status, 200, 'a token issued after the cut-off is accepted');
  });

  it('fails closed while Redis is down, and after Redis restarts empty keeps the old revocations and learns new ones', async (t) => {
    if (redis === null || !needRedisServer(t)) return;
    const victim = await sign(key, { sub: 'agent-3' });
    const ok = await sign(key, { sub: 'agent-4' });
    const later = await sign(key, { sub: 'agent-5' });
    const jti = (JSON.parse(Buffer.from(victim.split('.')[1] as string, 'base64url').toString()) as { jti: string }).jti;
    assert.equal((await revoke(a, { jti })).status, 201);
    await eventually(() => status(b, victim), (s) => s.code === 'token_revoked', 'B refuses the revoked token');

    await redis.stop();
    for (const g of [a, b]) {
      const s = await eventually(() => status(g, ok), (x) => x.code === 'revocation_unavailable', 'fail closed with Redis down');
      assert.equal(s.status, 503);
    }
    assert.equal((await revoke(a, { subject: 'agent-4' })).status, 503, 'a revocation that cannot be stored is refused, not lost silently');
    assert.equal((await request(`http://127.0.0.1:${b.adminPort}/readyz`)).status, 503, 'not ready while Redis is down');

    await redis.start(); // no persistence: Redis comes back with no data at all
    // Each instance resyncs on its own schedule: wait for both before asserting on either.
    await eventually(() => status(b, ok), (s) => s.status === 200, 'B serves again after Redis returns', 15_000);
    await eventually(() => status(a, ok), (s) => s.status === 200, 'A serves again after Redis returns', 15_000);
    assert.equal((await status(b, victim)).code, 'token_revoked', 'a revocation made before the restart still holds on B');
    assert.equal((await status(a, victim)).code, 'token_revoked', 'and on A');
    const ljti = (JSON.parse(Buffer.from(later.split('.')[1] as string, 'base64url').toString()) as { jti: string }).jti;
    assert.equal((await revoke(a, { jti: ljti })).status, 201);
    await eventually(() => status(b, later), (s) => s.code === 'token_revoked', 'a new revocation propagates after the restart', 5000);
  });
});
