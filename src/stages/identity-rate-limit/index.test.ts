import assert from 'node:assert/strict';
import { it } from 'node:test';
import { configSchema } from '../../config/schema.js';
import { createMetrics } from '../../observability/metrics.js';
import type { Exchange } from '../../pipeline/exchange.js';
import type { Identity } from '../../pipeline/identity.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { IdentityRecord } from '../../stores/identities/types.js';
import type { IdentityView } from '../../stores/identities/view.js';
import { createMemoryRateLimitStore } from '../../stores/rate-limit/index.js';
import { createIdentityRateLimitStage } from './index.js';

const identities = configSchema.parse({ sites: [{ id: 'a', hosts: ['x'], upstream: { urls: ['http://127.0.0.1:1'] } }] }).identities;
const identity = (subject: string): Identity => Object.freeze({ subject, type: 'agent', role: null, domain: null, agent: null, tokenIdHash: null });
const exchange = (id: Identity) => ({ identity: id, extraHeaders: [] as string[] }) as unknown as Exchange;

function setup() {
  const records = new Map<string, IdentityRecord>();
  const registry = { get: (s: string) => records.get(s), current: () => true } as unknown as IdentityView;
  const stage = createIdentityRateLimitStage({ siteId: 'a', store: createMemoryRateLimitStore({ sweepIntervalMs: 0 }), registry, identities, metrics: createMetrics({ version: 't', defaultMetrics: false }), now: () => 1_000_000 });
  const setLimit = (subject: string, rpm: number) => records.set(subject, { subject, type: 'agent', status: 'active', rpm_limit: rpm, role: null, domain: null, created_at: 0, updated_at: 0 });
  return { stage, setLimit };
}

it('two identity objects of one subject (two tokens) share one budget; another subject has its own', () => {
  const { stage, setLimit } = setup();
  setLimit('s1', 2);
  setLimit('s2', 2);
  const t1 = identity('s1');
  const t2 = identity('s1');
  assert.equal(stage.run(exchange(t1)), undefined);
  assert.equal(stage.run(exchange(t2)), undefined);
  assert.ok(stage.run(exchange(t1)) instanceof Refusal);
  assert.ok(stage.run(exchange(t2)) instanceof Refusal);
  assert.equal(stage.run(exchange(identity('s2'))), undefined);
});

it('a changed limit applies to the next request and is advertised with its own policy', () => {
  const { stage, setLimit } = setup();
  const id = identity('s1');
  setLimit('s1', 5);
  const ex1 = exchange(id);
  stage.run(ex1);
  assert.deepEqual(ex1.extraHeaders.slice(0, 2), ['RateLimit-Policy', '"identity";q=5;w=60']);
  assert.equal(ex1.extraHeaders[3], '"identity";r=4;t=60');
  setLimit('s1', 1);
  const ex2 = exchange(id);
  const r = stage.run(ex2);
  assert.ok(r instanceof Refusal && r.code === 'rate_limited');
  assert.equal(ex2.extraHeaders[1], '"identity";q=1;w=60');
  setLimit('s1', 5);
  const ex3 = exchange(id);
  assert.equal(stage.run(ex3), undefined);
  assert.equal(ex3.extraHeaders[1], '"identity";q=5;w=60');
  assert.equal(ex3.extraHeaders[3], '"identity";r=3;t=60');
});
