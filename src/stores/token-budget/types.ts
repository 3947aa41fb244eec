/**
 * Token budgets behind one interface, with an embedded (memory) and a distributed (Redis)
 * implementation; one contract suite (`contract.test.ts`) runs against both.
 *
 * A budget is "at most `limit` tokens in any sliding window of `windowMs`" for one key
 * (site, budget id, identity). LLM calls do not know their cost up front, so a decision
 * is two steps (docs/llm.md#token-budgets):
 *
 * - `reserve`: a call is admitted iff, in EVERY budget of the call, the tokens charged in
 *   the window plus the tokens reserved by calls still running are below the limit. Then
 *   an estimate is reserved in every budget, atomically (all or nothing), so concurrent
 *   calls — on any instance sharing the store — see each other before they are charged.
 * - `settle`: when the call ends, its reservation is dropped and its real usage charged
 *   at that time. Settling an unknown (or expired) reservation still charges the usage.
 *
 * Charges are kept in buckets of `windowMs / 60` (1 s for a minute, 24 min for a day) so
 * a day budget costs at most 61 numbers per identity, not one entry per call. A charge in
 * bucket k counts until (k + 1) × g + W: never less than W after it was made, at most one
 * bucket longer. So no window of length W ever holds more than the limit of ADMITTED
 * usage beyond what the calls admitted while there was room went on to use.
 *
 * A reservation holds budget for at most its `ttlMs` (a call that never ends, an instance
 * that died without settling); a settle after that still charges the call.
 */
export interface TokenBudget {
  /** Full store key, namespaced by site, budget id and identity. */
  readonly key: string;
  /** Tokens per window, integer >= 0; 0 tracks usage without ever refusing (`gatehouse usage`). */
  readonly limit: number;
  /** Window in ms, integer >= 60_000 (bucket = windowMs / 60, at least 1 ms). */
  readonly windowMs: number;
}

export interface BudgetState {
  /** Tokens charged in the window (settled calls). */
  readonly used: number;
  /** Tokens reserved by calls still running. */
  readonly reserved: number;
  /** max(0, limit - used - reserved), after this decision. */
  readonly remaining: number;
  /**
   * Refused: ms until the budget has room again (charges leave the window; when the
   * reservations of running calls alone fill it, until the earliest of them expires).
   * Admitted: ms until the oldest charge in the window leaves it (0 when none).
   * Tracking-only budgets (limit 0) never refuse; their remaining is 0.
   */
  readonly resetMs: number;
}

export interface ReserveDecision {
  /** true when every budget had room (and the reservation was recorded in each). */
  readonly allowed: boolean;
  /** One state per budget, same order as the input. */
  readonly budgets: readonly BudgetState[];
}

export interface TokenBudgetStore {
  readonly kind: 'memory' | 'redis';
  /** Admit-while-room and reserve `tokens` under `id` in every budget, atomically. Rejects when the store cannot decide. */
  reserve(budgets: readonly TokenBudget[], id: string, tokens: number, ttlMs: number, nowMs: number): ReserveDecision | Promise<ReserveDecision>;
  /** Drop reservation `id` and charge `tokens` (>= 0) now, in every budget, atomically; `ttlMs` as given to reserve (key lifetime). */
  settle(budgets: readonly TokenBudget[], id: string, tokens: number, ttlMs: number, nowMs: number): void | Promise<void>;
  /** The budgets' current state, read only. */
  peek(budgets: readonly TokenBudget[], nowMs: number): BudgetState[] | Promise<BudgetState[]>;
  ready(): boolean;
  close(): Promise<void>;
}

/** Bucket width for a window: 60 buckets per window. */
export function bucketMs(windowMs: number): number {
  return Math.max(1, Math.floor(windowMs / 60));
}
