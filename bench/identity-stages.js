#!/usr/bin/env node
// Micro-benchmark of the identity stages in isolation (no HTTP, no proxy): CPU per call of
// `token` (steady state: verified-token cache hit), `revocation` and `identity_rate_limit`
// (memory store), on an RS256 (2048-bit) token. NOT a test; it asserts nothing. Needs dist/
// (npm run build). Usage: node bench/identity-stages.js [--n 200000]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(path.join(ROOT, 'dist', p));
const i = process.argv.indexOf('--n');
const N = i >= 0 ? Number(process.argv[i + 1]) : 200_000;

const { keyDir, makeKey, sign } = await dist('testing/tokens.js');
const { createTokenStage } = await dist('stages/token/index.js');
const { compileIssuers } = await dist('stages/token/compile.js');
const { createRevocationStage } = await dist('stages/revocation/index.js');
const { createIdentityRateLimitStage } = await dist('stages/identity-rate-limit/index.js');
const { createMemoryRateLimitStore } = await dist('stores/rate-limit/index.js');
const { createMetrics } = await dist('observability/metrics.js');
const { configSchema } = await dist('config/schema.js');
const { RevocationSet } = await dist('stores/revocation/set.js');

const dir = keyDir();
const key = makeKey(dir, 'k1');
const cfg = configSchema.parse({
  sites: [{ id: 'a', hosts: ['x'], upstream: { urls: ['http://127.0.0.1:1'] }, auth: {} }],
  auth: { issuers: [{ id: 'm', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: 'k1', file: key.file }] }] },
});
const metrics = createMetrics({ version: 'bench', defaultMetrics: false });
const token = createTokenStage({ siteId: 'a', site: {}, auth: cfg.auth, issuers: compileIssuers(cfg.auth, dir, () => null), maxLifetimeMs: 86_400_000, log: null, metrics });
const set = new RevocationSet();
for (let k = 0; k < 10_000; k++) set.apply({ kind: 'jti', key: `x${k}`, before: 0, expiresAt: Date.now() + 3_600_000, createdAt: Date.now() });
const revocations = { revoked: (j, s, iat, t) => set.revoked(j, s, iat, t), current: () => true };
const rec = { subject: 'agent-1', type: 'agent', status: 'active', rpm_limit: 1_000_000_000, role: null };
const registry = { get: () => rec, current: () => true };
const revocation = createRevocationStage({ revocations, registry, revocation: cfg.revocation, identities: cfg.identities });
const limit = createIdentityRateLimitStage({ siteId: 'a', store: createMemoryRateLimitStore(), registry, identities: cfg.identities, metrics });
const jwt = await sign(key);
const exchange = () => ({ req: { rawHeaders: ['Host', 'x', 'Authorization', `Bearer ${jwt}`, 'Accept', '*/*'] }, normPath: '/', identity: null, token: null, extraHeaders: [] });
const t0 = performance.now();
await token.run(exchange());
console.log(`first request (jose RS256 verification): ${(performance.now() - t0).toFixed(2)} ms`);
for (const [name, stage] of [['token (cache hit)', token], ['revocation (10k entries)', revocation], ['identity_rate_limit (memory)', limit]]) {
  const xs = [];
  for (let k = 0; k < N; k++) {
    const ex = exchange();
    token.run(ex);
    xs.push(ex);
  }
  const s = performance.now();
  for (let k = 0; k < N; k++) stage.run(xs[k]);
  console.log(`${name}: ${(((performance.now() - s) * 1000) / N).toFixed(2)} µs/call`);
}
