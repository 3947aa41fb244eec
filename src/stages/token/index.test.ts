import assert from 'node:assert/strict';
import { it } from 'node:test';
import { configSchema } from '../../config/schema.js';
import { createMetrics } from '../../observability/metrics.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { Stage } from '../../pipeline/stage.js';
import { keyDir, makeKey, sign, tamperPayload, tamperSignature } from '../../testing/tokens.js';
import { createTokenStage } from './index.js';
import type { RemoteJwks, VerificationKey } from './keys.js';
import type { CompiledIssuer } from './verifier.js';

const dir = keyDir();
const key = makeKey(dir, 'k1', 'ES256');
const cfg = configSchema.parse({
  sites: [{ id: 'a', hosts: ['x'], upstream: { urls: ['http://127.0.0.1:1'] }, auth: {} }],
  auth: { issuers: [{ id: 'm', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: 'k1', file: key.file }] }] },
});
const issuerConfig = cfg.auth.issuers[0];
if (issuerConfig === undefined) throw new Error('no issuer');
const verificationKey: VerificationKey = { kid: 'k1', alg: 'ES256', key: key.publicKey };

function stageWith(issuer: CompiledIssuer): Stage {
  return createTokenStage({ siteId: 'a', site: { pass_authorization: false, api_key_header: false }, auth: cfg.auth, issuers: new Map([['m', issuer]]), maxLifetimeMs: 86_400_000, log: null as never, metrics: createMetrics({ version: 't', defaultMetrics: false }) });
}
const exchange = (token: string) => ({ req: { rawHeaders: ['Host', 'x', 'Authorization', `Bearer ${token}`] }, normPath: '/', identity: null, token: null, extraHeaders: [] }) as unknown as Exchange;

async function run(stage: Stage, token: string): Promise<{ ex: Exchange; result: unknown; sync: boolean }> {
  const ex = exchange(token);
  const r = stage.run(ex);
  const sync = !(r instanceof Promise);
  return { ex, result: await r, sync };
}

it('serves a file-key token from the cache synchronously; a tampered copy misses and is refused', async () => {
  const stage = stageWith({ id: 'm', config: issuerConfig, staticKeys: new Map([['k1', verificationKey]]), remote: null });
  const t = await sign(key);
  const first = await run(stage, t);
  assert.equal(first.result, undefined);
  assert.equal(first.sync, false, 'first sight: signature check');
  const again = await run(stage, t);
  assert.equal(again.result, undefined);
  assert.equal(again.sync, true, 'cache hit: no promise');
  assert.equal(again.ex.identity?.subject, 'agent-1');
  for (const bad of [tamperSignature(t), tamperPayload(t, { sub: 'root' })]) {
    const r = await run(stage, bad);
    assert.ok(r.result instanceof Refusal && r.result.code === 'invalid_token');
    assert.equal(r.ex.identity, null);
  }
});

it('a cached token whose JWKS-URL key was dropped by a refresh is refused at once', async () => {
  let keys: Map<string, VerificationKey> | null = new Map([['k1', verificationKey]]);
  const remote = { url: 'http://jwks.test/', keys: () => keys, unknownKid: () => undefined } as unknown as RemoteJwks;
  const stage = stageWith({ id: 'm', config: issuerConfig, staticKeys: new Map(), remote });
  const t = await sign(key);
  assert.equal((await run(stage, t)).result, undefined);
  const hit = await run(stage, t);
  assert.equal(hit.sync, true);
  assert.equal(hit.result, undefined);
  keys = new Map();
  const gone = await run(stage, t);
  assert.ok(gone.result instanceof Refusal && gone.result.code === 'invalid_token');
  keys = null; // never fetched / stale: our problem, not the client's
  const stale = await run(stage, t);
  assert.ok(stale.result instanceof Refusal && stale.result.code === 'token_keys_unavailable');
});
