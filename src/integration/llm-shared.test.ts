/**
 * Two gateway instances on one Redis and one PostgreSQL registry (issue 15): one token
 * budget shared exactly across both; an upstream credential stored encrypted in the
 * registry through instance A's admin API and used by instance B; per-identity usage so
 * far from the admin API and `gatehouse usage`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import postgres from 'postgres';
import { closeSharedRedis, deleteByPrefix, sharedRedis } from '../stores/rate-limit/test-support.js';
import { BIN, baseConfig, request, startGateway, writeConfig } from '../testing/harness.js';
import { startLlmUpstream } from '../testing/llm-upstream.js';
import { needPostgres, needRedis, POSTGRES_URL, REDIS_URL } from '../testing/services.js';
import { keyDir, makeKey, sign } from '../testing/tokens.js';

it('two instances share one token budget exactly; a registry credential set on A is used by B', async (t) => {
  if (!(await needRedis(t)) || !(await needPostgres(t))) return;
  const schema = `gh_test_${randomBytes(5).toString('hex')}`;
  const prefix = `gatehouse-test:${randomBytes(5).toString('hex')}:`;
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-llm-shared-'));
  const admin = randomBytes(16).toString('hex');
  const tokenFile = join(dir, 'admin.token');
  writeFileSync(tokenFile, admin, { mode: 0o600 });
  const credKey = join(dir, 'credentials.key');
  writeFileSync(credKey, randomBytes(32).toString('hex'), { mode: 0o600 });
  const key = makeKey(keyDir(), 'k1', 'ES256');
  const up = await startLlmUpstream();
  const secret = `sk-registry-${randomBytes(6).toString('hex')}`;
  const cfg = baseConfig(up.url, {}, {
    admin: { listen: '127.0.0.1:0', token_file: tokenFile },
    state: { store: 'redis', redis: { url: REDIS_URL, key_prefix: prefix, command_timeout: '2s' }, postgres: { url: POSTGRES_URL, schema } },
    auth: { issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: 'k1', file: key.file }] }] },
    identities: { store: 'postgres', refresh_interval: '60s', max_staleness: '5m', credential_keys: [{ id: 'c1', file: credKey }] },
    sites: [
      {
        id: 'llm',
        hosts: ['127.0.0.1'],
        upstream: { urls: [up.url] },
        auth: {},
        llm: {
          models: { 'gpt-test': {} },
          grants: [{ id: 'agents', match: { types: ['agent'] }, models: ['gpt-test'], tokens_per_minute: 100, max_output_tokens: 10 }],
          credentials: { registry: true },
        },
      },
    ],
  });
  const a = await startGateway(cfg);
  const b = await startGateway(cfg);
  const client = await sharedRedis();
  try {
    const api = (g: typeof a, method: string, path: string, body?: unknown) =>
      request(`${g.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    assert.equal((await api(a, 'POST', '/v1/identities', { subject: 'agent-s', type: 'agent' })).status, 201);
    const jwt = await sign(key, { sub: 'agent-s' });
    const call = (g: typeof a) => new OpenAI({ apiKey: jwt, baseURL: `${g.url}/v1`, maxRetries: 0 }).chat.completions.create({ model: 'gpt-test', messages: [] });
    // No credential yet: refused, on both.
    const end = Date.now() + 5000;
    for (;;) {
      const err = await call(b).then(() => null, (e: unknown) => e);
      if (err instanceof OpenAI.PermissionDeniedError && (err.error as { code?: string }).code === 'no_upstream_credential') break;
      if (Date.now() > end) assert.fail(`B never saw agent-s: ${String(err)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Stored through A (encrypted), announced by Redis push, used by B.
    assert.equal((await api(a, 'PUT', '/v1/identities/agent-s/llm-credential', { credential: secret })).status, 204);
    const pg = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
    const rows = await pg`SELECT llm FROM ${pg(schema)}.identity_credentials WHERE subject = 'agent-s'`;
    assert.ok(rows[0] !== undefined && !String(rows[0].llm).includes(secret), 'the registry holds it encrypted');
    await pg.end();
    const seen = up.calls.length;
    for (;;) {
      const ok = await call(b).then(() => true, () => false);
      if (ok) break;
      if (Date.now() > end + 5000) assert.fail('B never picked up the credential');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(up.calls.at(-1)?.headers.authorization, `Bearer ${secret}`);
    assert.equal(up.calls.length, seen + 1);
    // One budget of 100 tokens across A and B; each call is charged 17 (12 + 5). B already
    // used 17: admitted while charged < 100, so calls at 17, 34, 51, 68, 85 pass — A, B
    // alternating — and the next, at 102, is refused on either instance.
    const order = [a, b, a, b, a];
    for (const g of order) await call(g);
    for (const g of [a, b]) {
      const err = await call(g).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof OpenAI.RateLimitError, `expected 429 from ${g === a ? 'A' : 'B'}, got ${String(err)}`);
    }
    const usage = await api(b, 'GET', '/v1/llm/usage?subject=agent-s');
    const report = JSON.parse(usage.body) as { usage: Array<{ site: string; grant: string; budgets: Array<{ id: string; used: number; limit: number | null }> }> };
    assert.deepEqual(report.usage[0]?.budgets.map((x) => [x.id, x.used, x.limit]), [['tokens_per_minute', 102, 100], ['tokens_per_day', 102, null]]);
    assert.equal(report.usage[0]?.grant, 'agents');
    // The CLI reads the same, from either instance's admin API.
    const file = writeConfig(cfg);
    const out = await promisify(execFile)(process.execPath, [BIN, 'usage', '--config', file, '--admin', a.adminUrl]);
    assert.match(out.stdout, /agent-s\tllm\tagents\ttokens_per_minute\t102\t0\t100\t0\t\d+/);
    // Removed from the registry (DELETE): refused again.
    assert.equal((await api(a, 'DELETE', '/v1/identities/agent-s/llm-credential')).status, 204);
  } finally {
    await a.close();
    await b.close();
    await up.close();
    await deleteByPrefix(client, prefix);
    await closeSharedRedis();
    const pg = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
    await pg`DROP SCHEMA IF EXISTS ${pg(schema)} CASCADE`;
    await pg.end();
  }
});
