/**
 * The policy stage (`policy`): the site's Cedar policy set decides whether the request
 * may reach the upstream. Runs after identity_rate_limit and before proxy. Deny by
 * default, forbid over permit (Cedar semantics), and fail closed: an evaluation error
 * refuses. Decisions are cached per loaded policy set by their full input (decide.ts).
 */
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { Stage, StageResult } from '../../pipeline/stage.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { decisionKey, evaluate, type Decision, type DecisionInput, type ResourceFacts } from './decide.js';
import { isJsonContentType } from '../../http/json-body.js';
import { BodyReadError, hasRequestBody, readBoundedBody, readFields, type BodyFields } from './body.js';
import type { ActiveSet, PolicyHandle } from './registry.js';

export const POLICY = 'policy';

export interface PolicyStageOptions {
  readonly handle: PolicyHandle;
  readonly resource: ResourceFacts;
  readonly bodyIdleTimeoutMs: number;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Epoch ms (tests inject one); only the UTC hour and weekday reach the policies. */
  readonly now?: () => number;
}

export function createPolicyStage(opts: PolicyStageOptions): Stage {
  const { handle, resource, metrics, log } = opts;
  const site = resource.site;
  const now = opts.now ?? Date.now;
  const fields = handle.cfg.body_fields;
  const maxBody = handle.cfg.max_body_bytes;
  const bodyTypes: ReadonlySet<string> = new Set(handle.cfg.body_types);
  const folded: ReadonlySet<string> = new Set(fields.map((f) => f.toLowerCase()));
  const types = handle.cfg.body_field_types;
  const UNSUPPORTED_TYPE = new Refusal('unsupported_media_type', POLICY, 'content_type');
  const ENCODED = new Refusal('unsupported_media_type', POLICY, 'content_encoding');
  const hits = metrics.policyCache.labels(site, 'hit');
  const misses = metrics.policyCache.labels(site, 'miss');
  const counters = {
    enforce: { allow: metrics.policyDecisions.labels(site, 'enforce', 'allow'), deny: metrics.policyDecisions.labels(site, 'enforce', 'deny'), error: metrics.policyDecisions.labels(site, 'enforce', 'error') },
    shadow: { allow: metrics.policyDecisions.labels(site, 'shadow', 'allow'), deny: metrics.policyDecisions.labels(site, 'shadow', 'deny'), error: metrics.policyDecisions.labels(site, 'shadow', 'error') },
  };

  function decideWith(active: ActiveSet, key: string, input: DecisionInput): Decision {
    let d = active.cache.get(key);
    if (d !== undefined) {
      hits.inc();
      return d;
    }
    misses.inc();
    d = evaluate(active.set, resource, input);
    // Errors are not cached: a transient cause must not stick.
    if (d.decision !== 'error') active.cache.set(key, d);
    return d;
  }

  function decide(ex: Exchange, body: BodyFields | null): StageResult {
    const enforced = handle.enforced;
    const shadow = handle.shadow;
    if (enforced === null && shadow === null) return undefined;
    // Only the UTC hour and weekday: finer time would make every decision unique (no cache).
    const hours = Math.floor(now() / 3_600_000);
    const input: DecisionInput = {
      identity: ex.identity,
      method: ex.req.method ?? 'GET',
      clientIp: ex.clientIp,
      path: ex.normPath,
      hour: hours % 24,
      // 1970-01-01 was a Thursday (4).
      weekday: (Math.floor(hours / 24) + 4) % 7,
      body,
    };
    if (shadow !== null) {
      const s = decideWith(shadow, decisionKey(input, shadow.set.uses), input);
      counters.shadow[s.decision].inc();
      if (s.decision !== 'allow') {
        ex.note('policy_shadow', { decision: s.decision, policies: s.policies });
        if (s.errors !== null) ex.note('policy_shadow_errors', s.errors);
      }
    }
    if (enforced === null) return undefined;
    const d = decideWith(enforced, decisionKey(input, enforced.set.uses), input);
    counters.enforce[d.decision].inc();
    ex.note('policies', d.policies);
    if (d.decision === 'allow') return undefined;
    if (d.errors !== null) {
      ex.note('policy_errors', d.errors);
      log.warn({ event: 'policy_evaluation_failed', site, request_id: ex.id, policies: d.policies, errors: d.errors }, 'policy evaluation failed; request refused');
    }
    return new Refusal('policy_denied', POLICY, d.decision === 'error' ? 'error' : undefined);
  }

  return {
    id: POLICY,
    run(ex) {
      if (fields.length === 0) return decide(ex, null);
      if (!hasRequestBody(ex) || ex.res === null) return decide(ex, {});
      // Only a body every upstream reads the same way is read: JSON of a listed type, in
      // UTF-8, not compressed (a compressed body would be judged on bytes nobody reads).
      const h = ex.req.headers;
      if (!isJsonContentType(h['content-type'], bodyTypes)) return UNSUPPORTED_TYPE;
      if (h['content-encoding'] !== undefined) return ENCODED;
      return readBoundedBody(ex, maxBody, opts.bodyIdleTimeoutMs).then(
        (buf) => {
          ex.body = buf;
          ex.bytesIn = buf.length;
          const r = readFields(buf, fields, folded, types);
          if ('problem' in r) return new Refusal('invalid_body', POLICY, r.problem);
          return decide(ex, r.fields);
        },
        (err: unknown) => {
          if (err instanceof BodyReadError) return new Refusal(err.code, POLICY, 'body');
          throw err;
        },
      );
    },
  };
}
