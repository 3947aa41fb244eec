/**
 * Client rate limiting: rules per site keyed by client IP (IPv6 by prefix), optionally
 * restricted to path classes matched on the *normalized* path, so no spelling of
 * `/login` escapes the login rule. All rules that apply to a request are decided in one
 * atomic store call: a login request consumes both the general and the login budget, and
 * a refused request consumes neither (semantics: docs/rate-limiting.md).
 *
 * Every response of a rate-limited request carries the IETF `RateLimit-Policy` and
 * `RateLimit` headers; a refusal carries an accurate `Retry-After` (whole seconds, rounded
 * up: a retry after that long finds room, unless someone else took it meanwhile).
 *
 * When the store cannot decide, each rule's `on_store_error` applies: the default
 * `refuse` answers 503 `rate_limit_unavailable` (fail closed); `allow` lets the request
 * through and counts it.
 */
import type { RateRuleConfig } from '../../config/schema.js';
import { compilePathPatterns } from '../../http/path.js';
import { rateKeyOf } from '../../net/ip.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { Stage, StageResult } from '../../pipeline/stage.js';
import { rateKey } from '../../stores/rate-limit/key.js';
import type { RateDecision, RateHit, RateLimitStore } from '../../stores/rate-limit/types.js';

export const RATE_LIMIT = 'rate_limit';

interface CompiledRule {
  readonly id: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly enforce: boolean;
  readonly failOpen: boolean;
  readonly matches: ((normPath: string) => boolean) | null;
  readonly policy: string;
}

export interface RateLimitStageOptions {
  readonly siteId: string;
  readonly rules: readonly RateRuleConfig[];
  readonly store: RateLimitStore;
  readonly ipv6Prefix: number;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Epoch milliseconds; injectable for tests. */
  readonly now?: () => number;
}

export function createRateLimitStage(opts: RateLimitStageOptions): Stage | null {
  if (opts.rules.length === 0) return null;
  const { siteId, store, ipv6Prefix, metrics } = opts;
  const now = opts.now ?? Date.now;
  const rules: CompiledRule[] = opts.rules.map((r) => ({
    id: r.id,
    limit: r.limit,
    windowMs: r.window,
    enforce: !r.shadow,
    failOpen: r.on_store_error === 'allow',
    matches: r.paths ? compilePathPatterns(r.paths) : null,
    policy: `"${r.id}";q=${r.limit};w=${Math.ceil(r.window / 1000)}`,
  }));
  const keyPrefixes = rules.map((r) => rateKey(siteId, r.id, ''));
  // RateLimit-Policy per set of applicable rules (bit mask), built on first use.
  const policyByMask = new Map<number, string>();
  const storeErrors = {
    refused: metrics.rateLimitStoreErrors.labels(siteId, 'refused'),
    allowed: metrics.rateLimitStoreErrors.labels(siteId, 'allowed'),
  };

  function decided(ex: Exchange, applied: CompiledRule[], mask: number, d: RateDecision): StageResult {
    let policy = policyByMask.get(mask);
    if (policy === undefined) {
      // Shadow rules never apply to the client, so they are not advertised.
      policy = applied
        .filter((r) => r.enforce)
        .map((r) => r.policy)
        .join(', ');
      policyByMask.set(mask, policy);
    }
    // RateLimit reports the enforced rule closest to exhaustion.
    let tightest = -1;
    let retryAfter = 0;
    let refusedBy: string | undefined;
    for (let i = 0; i < applied.length; i++) {
      const rule = applied[i] as CompiledRule;
      const o = d.rules[i];
      if (o === undefined) continue;
      if (!o.allowed) {
        if (rule.enforce) {
          metrics.rateLimitRefusals.labels(siteId, rule.id, 'enforce').inc();
          refusedBy ??= rule.id;
          const s = Math.ceil(o.resetMs / 1000);
          if (s > retryAfter) retryAfter = s;
        } else {
          metrics.rateLimitRefusals.labels(siteId, rule.id, 'shadow').inc();
          const shadow = (ex.notes?.rate_limit_shadow as string[] | undefined) ?? [];
          shadow.push(rule.id);
          ex.note('rate_limit_shadow', shadow);
        }
      }
      if (rule.enforce && (tightest < 0 || o.remaining < (d.rules[tightest] as { remaining: number }).remaining)) tightest = i;
    }
    if (policy !== '') ex.extraHeaders.push('RateLimit-Policy', policy);
    if (tightest >= 0) {
      const o = d.rules[tightest] as { remaining: number; resetMs: number };
      const r = applied[tightest] as CompiledRule;
      const t = d.allowed ? Math.ceil(o.resetMs / 1000) : retryAfter;
      ex.extraHeaders.push('RateLimit', `"${r.id}";r=${d.allowed ? o.remaining : 0};t=${t}`);
    }
    if (d.allowed) return undefined;
    return new Refusal('rate_limited', RATE_LIMIT, refusedBy, ['Retry-After', String(Math.max(1, retryAfter))]);
  }

  function failed(ex: Exchange, applied: CompiledRule[], err: unknown): StageResult {
    // Fail closed unless every enforced rule that applies was configured to fail open.
    for (const r of applied) {
      if (r.enforce && !r.failOpen) {
        storeErrors.refused.inc();
        return new Refusal('rate_limit_unavailable', RATE_LIMIT, r.id, undefined, err);
      }
    }
    storeErrors.allowed.inc();
    ex.note('rate_limit_store_error', err instanceof Error ? err.message : String(err));
    return undefined;
  }

  return {
    id: RATE_LIMIT,
    run: function rateLimit(ex: Exchange) {
      const clientKey = rateKeyOf(ex.clientIp, ipv6Prefix);
      const applied: CompiledRule[] = [];
      const hits: RateHit[] = [];
      let mask = 0;
      for (let i = 0; i < rules.length; i++) {
        const r = rules[i] as CompiledRule;
        if (r.matches !== null && !r.matches(ex.normPath)) continue;
        mask |= 1 << i;
        applied.push(r);
        hits.push({ key: (keyPrefixes[i] as string) + clientKey, limit: r.limit, windowMs: r.windowMs, enforce: r.enforce });
      }
      if (hits.length === 0) return undefined;
      let d: RateDecision | Promise<RateDecision>;
      try {
        d = store.hit(hits, now());
      } catch (err) {
        return failed(ex, applied, err);
      }
      if (d instanceof Promise) {
        return d.then(
          (res) => decided(ex, applied, mask, res),
          (err: unknown) => failed(ex, applied, err),
        );
      }
      return decided(ex, applied, mask, d);
    },
  };
}
