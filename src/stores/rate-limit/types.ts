/**
 * Rate-limit state behind one interface, with an embedded (in-memory) and a distributed
 * (Redis) implementation. One contract suite (`contract.test.ts`) runs against both.
 *
 * Semantics (sliding log, documented in docs/rate-limiting.md): a rule "N per W" accepts
 * a hit at time t iff fewer than N hits were *accepted* in the half-open window
 * (t - W, t]. Therefore no window of length W ever contains more than N accepted hits,
 * and refused hits consume nothing.
 *
 * A decision covers every rule that applies to one request and is atomic: either every
 * enforced rule has room and all rules with room record the hit, or nothing is recorded.
 * Shadow (non-enforced) rules are evaluated and reported but never cause a refusal, and
 * a shadow rule without room records nothing.
 */
export interface RateHit {
  /** Full store key, already namespaced by site, rule and client (see `rateKey`). */
  readonly key: string;
  /** N: accepted hits allowed per window. Integer >= 1. */
  readonly limit: number;
  /** W in milliseconds. Integer >= 1. */
  readonly windowMs: number;
  /** false for shadow rules: reported, never refusing. */
  readonly enforce: boolean;
}

export interface RuleOutcome {
  /** Whether this rule had room for the hit (for shadow rules: whether it would have). */
  readonly allowed: boolean;
  /** Hits still acceptable in the current window after this decision (>= 0). */
  readonly remaining: number;
  /**
   * Milliseconds from `now` until the oldest accepted hit in the window leaves it, i.e.
   * until one more hit can be accepted if the rule is full. When the window is empty
   * after the decision this is 0; when only this hit is in it, it is `windowMs`.
   */
  readonly resetMs: number;
}

export interface RateDecision {
  /** true when every enforced rule had room (and the hit was recorded). */
  readonly allowed: boolean;
  /** One outcome per hit, same order as the input. */
  readonly rules: readonly RuleOutcome[];
}

export interface RateLimitStore {
  readonly kind: 'memory' | 'redis';
  /**
   * Decide and record atomically. `nowMs` is the caller's clock (epoch ms, integer); the
   * Redis store may be configured to use the Redis server clock instead so that many
   * instances share one time source. Rejects (or throws) when the store cannot decide;
   * the caller applies the rule's failure mode.
   */
  hit(hits: readonly RateHit[], nowMs: number): RateDecision | Promise<RateDecision>;
  /** true when the store can currently take decisions (used by /readyz). */
  ready(): boolean;
  close(): Promise<void>;
}
