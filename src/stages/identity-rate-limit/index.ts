/**
 * Per-identity rate limits (`identity_rate_limit`): every verified identity has its own
 * requests-per-minute budget — its registry `rpm_limit`, else `identities.default_agent_rpm`
 * for agents or `identities.human_rpm_by_role` for humans. Budgets are keyed by subject
 * across all sites, so two tokens of one identity share one budget and two identities
 * never do. It is the edge limiter: same store (memory or Redis), same sliding-log
 * semantics (a refused request consumes nothing), same headers (`RateLimit-Policy`,
 * `RateLimit`, `Retry-After`) and code (429 `rate_limited`); the rule id is `identity`.
 * A store failure refuses (503 `rate_limit_unavailable`).
 */
import type { IdentitiesConfig } from '../../config/schema.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Exchange } from '../../pipeline/exchange.js';
import type { Identity } from '../../pipeline/identity.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { Stage, StageResult } from '../../pipeline/stage.js';
import type { IdentityView } from '../../stores/identities/view.js';
import { rateKey } from '../../stores/rate-limit/key.js';
import type { RateDecision, RateLimitStore } from '../../stores/rate-limit/types.js';

export const IDENTITY_RATE_LIMIT = 'identity_rate_limit';
const RULE = 'identity';
const WINDOW_MS = 60_000;
/** '~' cannot start a site id, so identity budgets never share a key with a site's rules. */
const KEY_PREFIX = rateKey('~identity', 'rpm', '');
/** Distinct limits whose RateLimit-Policy value is kept (limits come from config and the registry). */
const MAX_POLICIES = 1024;

export interface IdentityRateLimitOptions {
  readonly siteId: string;
  readonly store: RateLimitStore;
  readonly registry: IdentityView;
  readonly identities: IdentitiesConfig;
  readonly metrics: Metrics;
  readonly now?: () => number;
}

export function limitFor(identities: IdentitiesConfig, type: 'agent' | 'human', role: string | null, own: number | null | undefined): number {
  if (own !== null && own !== undefined) return own;
  if (type === 'agent') return identities.default_agent_rpm;
  const byRole = identities.human_rpm_by_role;
  return (role !== null ? byRole[role] : undefined) ?? byRole.default ?? identities.default_agent_rpm;
}

export function createIdentityRateLimitStage(opts: IdentityRateLimitOptions): Stage {
  const { store, registry, identities, metrics, siteId } = opts;
  const now = opts.now ?? Date.now;
  const refused = metrics.rateLimitRefusals.labels(siteId, RULE, 'enforce');
  const storeRefused = metrics.rateLimitStoreErrors.labels(siteId, 'refused');
  // The store key of an identity, built once per verified identity rather than once per
  // request: the token stage hands out the same frozen Identity object for every request
  // of a cached token, so the key string is reused (no concatenation, and the Map in the
  // memory store finds its hash already computed). Weak: it goes when the token's cache
  // entry does.
  const keys = new WeakMap<Identity, string>();
  // RateLimit-Policy depends on the limit only, and identities share a few limits.
  const policies = new Map<number, string>();

  function policyFor(limit: number): string {
    let p = policies.get(limit);
    if (p === undefined) {
      if (policies.size >= MAX_POLICIES) policies.clear();
      p = `"${RULE}";q=${limit};w=60`;
      policies.set(limit, p);
    }
    return p;
  }

  function decided(ex: Exchange, limit: number, d: RateDecision): StageResult {
    const o = d.rules[0];
    ex.extraHeaders.push('RateLimit-Policy', policyFor(limit));
    if (o === undefined) return undefined;
    const t = Math.ceil(o.resetMs / 1000);
    ex.extraHeaders.push('RateLimit', `"${RULE}";r=${d.allowed ? o.remaining : 0};t=${t}`);
    if (d.allowed) return undefined;
    refused.inc();
    return new Refusal('rate_limited', IDENTITY_RATE_LIMIT, RULE, ['Retry-After', String(Math.max(1, t))]);
  }

  function failed(err: unknown): StageResult {
    storeRefused.inc();
    return new Refusal('rate_limit_unavailable', IDENTITY_RATE_LIMIT, RULE, undefined, err);
  }

  return {
    id: IDENTITY_RATE_LIMIT,
    run: function identityRateLimit(ex: Exchange) {
      const id = ex.identity;
      if (id === null) return undefined;
      const rec = registry.get(id.subject);
      const limit = limitFor(identities, id.type, rec?.role ?? id.role, rec?.rpm_limit);
      let key = keys.get(id);
      if (key === undefined) {
        key = KEY_PREFIX + id.subject;
        keys.set(id, key);
      }
      let d: RateDecision | Promise<RateDecision>;
      try {
        // A fresh hit list per decision (two small young objects): the store interface does
        // not promise that a store is done with its input when hit() returns.
        d = store.hit([{ key, limit, windowMs: WINDOW_MS, enforce: true }], now());
      } catch (err) {
        return failed(err);
      }
      if (d instanceof Promise) return d.then((r) => decided(ex, limit, r), failed);
      return decided(ex, limit, d);
    },
  };
}
