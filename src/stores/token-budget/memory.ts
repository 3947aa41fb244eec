/**
 * Embedded token-budget store: per key a few buckets of charged tokens and the
 * reservations of running calls, in a Map. Synchronous (no promise on the hot path);
 * atomic because `reserve` and `settle` never yield. Same semantics as redis.ts; the
 * contract suite runs against both.
 */
import { bucketMs, type BudgetState, type ReserveDecision, type TokenBudget, type TokenBudgetStore } from './types.js';

interface Entry {
  /** Bucket index → tokens charged in it. */
  readonly buckets: Map<number, number>;
  /** Reservation id → [tokens, expiry ms]. */
  readonly res: Map<string, [number, number]>;
  windowMs: number;
}

export interface MemoryTokenBudgetStore extends TokenBudgetStore {
  readonly kind: 'memory';
  reserve(budgets: readonly TokenBudget[], id: string, tokens: number, ttlMs: number, nowMs: number): ReserveDecision;
  settle(budgets: readonly TokenBudget[], id: string, tokens: number, ttlMs: number, nowMs: number): void;
  peek(budgets: readonly TokenBudget[], nowMs: number): BudgetState[];
  readonly size: number;
}

const ID = /^[A-Za-z0-9_.:-]{1,128}$/;

function check(budgets: readonly TokenBudget[], tokens: number | null, id: string | null = null): void {
  if (id !== null && !ID.test(id)) throw new RangeError('reservation ids are 1-128 characters of [A-Za-z0-9_.:-]');
  if (tokens !== null && !(Number.isSafeInteger(tokens) && tokens >= 0)) throw new RangeError('tokens must be a safe integer >= 0');
  for (let i = 0; i < budgets.length; i++) {
    const b = budgets[i] as TokenBudget;
    if (!Number.isSafeInteger(b.limit) || b.limit < 0 || !Number.isSafeInteger(b.windowMs) || b.windowMs < 1) throw new RangeError('invalid token budget');
    for (let j = 0; j < i; j++) if ((budgets[j] as TokenBudget).key === b.key) throw new RangeError('duplicate budget key in one decision');
  }
}

/** Drops what left the window (buckets) or expired (reservations); returns [used, reserved]. */
function prune(e: Entry, windowMs: number, now: number): [number, number] {
  const g = bucketMs(windowMs);
  let used = 0;
  for (const [k, t] of e.buckets) {
    if ((k + 1) * g + windowMs <= now) e.buckets.delete(k);
    else used += t;
  }
  let reserved = 0;
  for (const [id, [t, exp]] of e.res) {
    if (exp <= now) e.res.delete(id);
    else reserved += t;
  }
  return [used, reserved];
}

/** The state of one budget after pruning (see BudgetState for resetMs). */
export function budgetState(buckets: Iterable<[number, number]>, reservations: Iterable<number>, used: number, reserved: number, b: TokenBudget, now: number): BudgetState {
  const g = bucketMs(b.windowMs);
  const sorted = [...buckets].sort((x, y) => x[0] - y[0]);
  const full = b.limit > 0 && used + reserved >= b.limit;
  let resetMs = 0;
  if (!full) {
    const first = sorted[0];
    if (first !== undefined) resetMs = (first[0] + 1) * g + b.windowMs - now;
  } else {
    let total = used + reserved;
    let found = false;
    for (const [k, t] of sorted) {
      total -= t;
      if (total < b.limit) {
        resetMs = (k + 1) * g + b.windowMs - now;
        found = true;
        break;
      }
    }
    if (!found) {
      // Running calls alone fill the budget: room comes when one settles, at the latest
      // when the earliest reservation expires.
      let min = Infinity;
      for (const exp of reservations) if (exp < min) min = exp;
      resetMs = Number.isFinite(min) ? min - now : 0;
    }
  }
  return { used, reserved, remaining: b.limit === 0 ? 0 : Math.max(0, b.limit - used - reserved), resetMs: Math.max(0, resetMs) };
}

export function createMemoryTokenBudgetStore(opts: { maxKeys?: number; sweepIntervalMs?: number } = {}): MemoryTokenBudgetStore {
  const maxKeys = opts.maxKeys ?? 1_000_000;
  const map = new Map<string, Entry>();
  let clock = -Infinity;
  let closed = false;

  function touch(key: string, e: Entry): void {
    // Insertion order = least recently written first: the eviction order when full.
    map.delete(key);
    while (map.size >= maxKeys) {
      const first = map.keys().next();
      if (first.done) break;
      map.delete(first.value);
    }
    map.set(key, e);
  }

  function stateOf(e: Entry | undefined, b: TokenBudget, now: number): BudgetState {
    if (e === undefined) return budgetState([], [], 0, 0, b, now);
    const [used, reserved] = prune(e, b.windowMs, now);
    return budgetState(e.buckets, [...e.res.values()].map((r) => r[1]), used, reserved, b, now);
  }

  const store: MemoryTokenBudgetStore = {
    kind: 'memory',
    reserve(budgets, id, tokens, ttlMs, now) {
      if (closed) throw new Error('token-budget store is closed');
      check(budgets, tokens, id);
      if (now > clock) clock = now;
      let allowed = true;
      for (const b of budgets) {
        const e = map.get(b.key);
        if (e === undefined || b.limit === 0) continue;
        const [used, reserved] = prune(e, b.windowMs, now);
        if (used + reserved >= b.limit) allowed = false;
      }
      const out: BudgetState[] = [];
      for (const b of budgets) {
        let e = map.get(b.key);
        if (allowed) {
          if (e === undefined) e = { buckets: new Map(), res: new Map(), windowMs: b.windowMs };
          e.windowMs = b.windowMs;
          e.res.set(id, [tokens, now + ttlMs]);
          touch(b.key, e);
        }
        out.push(stateOf(e, b, now));
      }
      return { allowed, budgets: out };
    },
    settle(budgets, id, tokens, _ttlMs, now) {
      if (closed) throw new Error('token-budget store is closed');
      check(budgets, tokens, id);
      if (now > clock) clock = now;
      for (const b of budgets) {
        let e = map.get(b.key);
        if (e === undefined) {
          if (tokens === 0) continue;
          e = { buckets: new Map(), res: new Map(), windowMs: b.windowMs };
        }
        e.windowMs = b.windowMs;
        e.res.delete(id);
        prune(e, b.windowMs, now);
        if (tokens > 0) {
          const k = Math.floor(now / bucketMs(b.windowMs));
          e.buckets.set(k, (e.buckets.get(k) ?? 0) + tokens);
        }
        if (e.buckets.size === 0 && e.res.size === 0) map.delete(b.key);
        else touch(b.key, e);
      }
    },
    peek(budgets, now) {
      if (closed) throw new Error('token-budget store is closed');
      check(budgets, null);
      return budgets.map((b) => stateOf(map.get(b.key), b, now));
    },
    ready: () => !closed,
    get size() {
      return map.size;
    },
    close() {
      closed = true;
      if (timer !== undefined) clearInterval(timer);
      map.clear();
      return Promise.resolve();
    },
  };

  // Drops keys with nothing left in their window (by the largest time any call has seen).
  const sweepEvery = opts.sweepIntervalMs ?? 60_000;
  const timer =
    sweepEvery > 0
      ? setInterval(() => {
          for (const [k, e] of map) {
            prune(e, e.windowMs, clock);
            if (e.buckets.size === 0 && e.res.size === 0) map.delete(k);
          }
        }, sweepEvery)
      : undefined;
  timer?.unref();
  return store;
}
