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

  function decided(ex: Exchange, limit: number, d: RateDecision): StageResult {
    const o = d.rules[0];
    ex.extraHeaders.push('RateLimit-Policy', `"${RULE}";q=${limit};w=60`);
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
      let d: RateDecision | Promise<RateDecision>;
      try {
        d = store.hit([{ key: KEY_PREFIX + id.subject, limit, windowMs: WINDOW_MS, enforce: true }], now());
      } catch (err) {
        return failed(err);
      }
      if (d instanceof Promise) return d.then((r) => decided(ex, limit, r), failed);
      return decided(ex, limit, d);
    },
  };
}
