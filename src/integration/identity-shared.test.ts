/**
 * Two gateways sharing one PostgreSQL registry and one Redis: a suspension made through
 * instance A's admin API reaches instance B by Redis push (B's poll interval is set to a
 * minute, so only the push can explain it), and B's per-identity budget is shared with A
 * (same Redis rate-limit store).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import postgres from 'postgres';
import { deleteByPrefix, sharedRedis, closeSharedRedis } from '../stores/rate-limit/test-support.js';
import { baseConfig, request, startGateway, startUpstream } from '../testing/harness.js';
import { needPostgres, needRedis, POSTGRES_URL, REDIS_URL } from '../testing/services.js';
import { bearer, keyDir, makeKey, sign } from '../testing/tokens.js';

it('a suspension on instance A reaches instance B by push; both share the registry and the budget', async (t) => {
  if (!(await needRedis(t)) || !(await needPostgres(t))) return;
  const schema = `gh_test_${randomBytes(5).toString('hex')}`;
  const prefix = `gatehouse-test:${randomBytes(5).toString('hex')}:`;
  const key = makeKey(keyDir(), 'k1');
  const admin = randomBytes(16).toString('hex');
  const tokenFile = join(mkdtempSync(join(tmpdir(), 'gatehouse-admin-')), 'admin.token');
  writeFileSync(tokenFile, admin);
  chmodSync(tokenFile, 0o600);
  const up = await startUpstream();
  const cfg = baseConfig(
    up.url,
    { auth: {} },
    {
      admin: { listen: '127.0.0.1:0', token_file: tokenFile },
      state: { store: 'redis', redis: { url: REDIS_URL, key_prefix: prefix, command_timeout: '2s' }, postgres: { url: POSTGRES_URL, schema } },
      auth: { issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: 'k1', file: key.file }] }] },
      identities: { store: 'postgres', refresh_interval: '60s', max_staleness: '5m' },
    },
  );
  const a = await startGateway(cfg);
  const b = await startGateway(cfg);
  try {
    const api = (method: string, path: string, body: unknown) =>
      request(`${a.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await api('POST', '/v1/identities', { subject: 'agent-s', type: 'agent', rpm_limit: 4 })).status, 201);
    const token = await sign(key, { sub: 'agent-s' });
    const get = async (g: typeof a) => (await request(`${g.url}/x`, { headers: bearer(token) })).status;
    let end = Date.now() + 5000;
    while ((await get(b)) !== 200) {
      if (Date.now() > end) assert.fail('B never saw the new identity');
      await new Promise((r) => setTimeout(r, 20));
    }
    // One budget across instances: B used 1, A may use 3 more, then both refuse.
    assert.equal(await get(a), 200);
    assert.equal(await get(a), 200);
    assert.equal(await get(b), 200);
    assert.equal(await get(a), 429);
    assert.equal(await get(b), 429);
    assert.equal((await api('PATCH', '/v1/identities/agent-s', { status: 'suspended', rpm_limit: 100 })).status, 200);
    end = Date.now() + 2000;
    let s = 0;
    while ((s = await get(b)) !== 403) {
      if (Date.now() > end) assert.fail(`suspension did not reach B by push (last ${s})`);
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    await a.close();
    await b.close();
    await up.close();
    await deleteByPrefix(await sharedRedis(), prefix);
    await closeSharedRedis();
    const sql = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
    await sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`;
    await sql.end();
  }
});
