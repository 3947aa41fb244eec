/**
 * The identity registry is authoritative (docs/identity.md#the-registry-decides), with an
 * SQLite and a PostgreSQL registry behind the real gateway: a token whose type, domain or
 * role differs from what the registry records is refused (403 identity_mismatch); a token
 * that claims none gets the registry's value, and that value is what the upstream and the
 * policy see; a change in the registry applies to tokens already issued.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import postgres from 'postgres';
import { baseConfig, request, startGateway, startUpstream, type Reply } from '../testing/harness.js';
import { needPostgres, POSTGRES_URL } from '../testing/services.js';
import { bearer, keyDir, makeKey, sign } from '../testing/tokens.js';

const code = (r: Reply): string => (r.status < 300 ? 'ok' : (JSON.parse(r.body) as { error: { code: string } }).error.code);

async function registryDecides(t: TestContext, store: 'sqlite' | 'postgres'): Promise<void> {
  const schema = `gh_test_${randomBytes(5).toString('hex')}`;
  if (store === 'postgres' && !(await needPostgres(t))) return;
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-registry-'));
  const key = makeKey(keyDir(), 'k1');
  const admin = randomBytes(24).toString('hex');
  writeFileSync(join(dir, 'admin.token'), admin, { mode: 0o600 });
  // Only the billing domain may pass: the policy reads principal.domain, so a token that
  // names another domain than its registry entry would otherwise change the decision.
  writeFileSync(join(dir, 'billing.cedar'), '@id("billing-only") permit(principal, action, resource) when { principal has domain && principal.domain == "billing" };');
  const up = await startUpstream();
  const g = await startGateway(
    baseConfig(
      up.url,
      { auth: {}, domain: 'billing', policy: { files: [join(dir, 'billing.cedar')] } },
      {
        admin: { listen: '127.0.0.1:0', token_file: join(dir, 'admin.token') },
        state: { dir: join(dir, 'state'), ...(store === 'postgres' ? { postgres: { url: POSTGRES_URL, schema } } : {}) },
        auth: { issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: 'k1', file: key.file }] }] },
        identities: { store, refresh_interval: '60s', max_staleness: '5m', default_agent_rpm: 100_000 },
      },
    ),
  );
  try {
    const api = (method: string, path: string, body: unknown) =>
      request(`${g.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    for (const body of [
      { subject: 'agent-b', type: 'agent', domain: 'billing', role: 'reader' },
      { subject: 'agent-n', type: 'agent' },
    ]) {
      assert.equal((await api('POST', '/v1/identities', body)).status, 201);
    }
    const get = (claims: Record<string, unknown>) => sign(key, claims).then((tok) => request(`${g.url}/x`, { headers: bearer(tok) }));
    // The admin API refreshes this instance's view after the write; wait until it shows.
    const until = async (what: string, fn: () => Promise<string>, want: string) => {
      const end = Date.now() + 5000;
      let last = '';
      while ((last = await fn()) !== want) {
        if (Date.now() > end) assert.fail(`${what}: ${last}, wanted ${want}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await until('registered', async () => code(await get({ sub: 'agent-b', domain: 'billing' })), 'ok');

    // Claims equal to the registry: passes, the upstream sees them.
    let r = await get({ sub: 'agent-b', domain: 'billing', role: 'reader' });
    assert.equal(r.status, 200, r.body);
    assert.equal(up.seen.at(-1)?.headers['x-gatehouse-domain'], 'billing');

    // Another domain, another role, another type: refused, and the answer names no detail.
    for (const claims of [{ domain: 'search' }, { domain: 'billing', role: 'admin' }, { type: 'human', domain: 'billing' }]) {
      r = await get({ sub: 'agent-b', ...claims });
      assert.equal(r.status, 403, JSON.stringify(claims));
      assert.equal(code(r), 'identity_mismatch', JSON.stringify(claims));
      assert.doesNotMatch(r.body, /search|admin|domain|role/);
    }
    const line = g.logs.findLast((l) => l.code === 'identity_mismatch');
    assert.equal(line?.cause, 'token type differs from the registered type', 'the log says what differed');

    // No domain or role in the token: the registry's values are the identity, for the
    // policy (principal.domain == "billing" permits) and for the upstream headers.
    const before = up.seen.length;
    r = await get({ sub: 'agent-b' });
    assert.equal(r.status, 200, r.body);
    assert.equal(up.seen.length, before + 1);
    assert.equal(up.seen.at(-1)?.headers['x-gatehouse-domain'], 'billing');
    assert.equal(up.seen.at(-1)?.headers['x-gatehouse-role'], 'reader');

    // The registry records no domain: the token's claim stands (nothing contradicts it).
    assert.equal((await get({ sub: 'agent-n', domain: 'billing' })).status, 200);
    assert.equal(code(await get({ sub: 'agent-n', domain: 'search' })), 'policy_denied');

    // A registry change applies to a token already issued.
    const issued = await sign(key, { sub: 'agent-b', domain: 'billing' });
    assert.equal((await request(`${g.url}/x`, { headers: bearer(issued) })).status, 200);
    assert.equal((await api('PATCH', '/v1/identities/agent-b', { domain: 'search' })).status, 200);
    await until('domain changed', async () => code(await request(`${g.url}/x`, { headers: bearer(issued) })), 'identity_mismatch');
  } finally {
    await g.close();
    await up.close();
    if (store === 'postgres') {
      const sql = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
      await sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`;
      await sql.end();
    }
  }
}

describe('the identity registry decides what it records', { concurrency: false }, () => {
  it('SQLite registry: a token whose domain, role or type differs is refused with identity_mismatch; one without them gets the registry values', (t) => registryDecides(t, 'sqlite'));
  it('PostgreSQL registry: a token whose domain, role or type differs is refused with identity_mismatch; one without them gets the registry values', (t) => registryDecides(t, 'postgres'));
});
