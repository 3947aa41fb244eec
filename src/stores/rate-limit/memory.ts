/**
 * Embedded (single-process) rate-limit store.
 *
 * Per key: a ring buffer of the timestamps of *accepted* hits, oldest first, holding at
 * most `limit` entries. Because a hit is only accepted while fewer than `limit` accepted
 * hits are in the window, the buffer never needs more than `limit` slots; the capacity
 * grows lazily (4, 8, 16, ... up to `limit`) so that a client seen once costs a few
 * dozen bytes, not `limit` doubles.
 *
 * `hit` is synchronous and returns a plain object: the request hot path calls it for
 * every request, and an in-memory decision should not pay for a Promise and a microtask.
 * It allocates only the result (one object, one array, one outcome per rule); the
 * per-decision scratch state lives in arrays owned by the store and reused.
 *
 * Atomicity: JavaScript is single-threaded and `hit` never yields, so evaluating every
 * rule first and recording afterwards is atomic with respect to every other decision.
 *
 * Time: all comparisons use the caller's `nowMs`. The periodic sweep has no `nowMs` of its
 * own, so it uses the largest `nowMs` any decision has seen (the store's clock); this
 * keeps the sweep consistent with the decisions, including under a synthetic clock in
 * tests. A key is swept only when a decision at that time would prune all its entries
 * anyway, so the sweep never changes an outcome.
 *
 * The semantics are identical to the Redis store (see redis.ts), which the contract suite
 * and the model-based property test check.
 */
import type { RateDecision, RateHit, RateLimitStore, RuleOutcome } from './types.js';

export interface MemoryRateLimitStoreOptions {
  /** Upper bound on the number of keys kept (default 1_000_000). */
  maxKeys?: number;
  /** How often expired keys are dropped (default 10_000 ms; 0 disables the timer). */
  sweepIntervalMs?: number;
}

/** The memory store narrows `hit` to its synchronous form. */
export interface MemoryRateLimitStore extends RateLimitStore {
  readonly kind: 'memory';
  hit(hits: readonly RateHit[], nowMs: number): RateDecision;
  /** Number of keys currently held (for metrics and tests). */
  readonly size: number;
  /** Run a full sweep now, synchronously (normally the timer does it incrementally). */
  sweep(): void;
}

interface Entry {
  /** Ring buffer of accepted timestamps; length is the capacity (<= current limit). */
  buf: number[];
  /** Index of the oldest entry. */
  head: number;
  /** Number of entries. */
  size: number;
  /** Window of the last decision for this key, for the sweep. */
  windowMs: number;
}

const INITIAL_CAPACITY = 4;
/** Keys visited per sweep slice before yielding to the event loop. */
const SWEEP_SLICE = 10_000;

function newEntry(limit: number, windowMs: number): Entry {
  const cap = Math.min(limit, INITIAL_CAPACITY);
  return { buf: new Array<number>(cap).fill(0), head: 0, size: 0, windowMs };
}

/** Timestamp of the i-th oldest entry (0 <= i < size). */
function at(e: Entry, i: number): number {
  let j = e.head + i;
  if (j >= e.buf.length) j -= e.buf.length;
  return e.buf[j] as number;
}

/** Drop entries at or before `cutoff` (they have left the half-open window). */
function prune(e: Entry, cutoff: number): void {
  const cap = e.buf.length;
  while (e.size > 0 && (e.buf[e.head] as number) <= cutoff) {
    if (++e.head === cap) e.head = 0;
    e.size--;
  }
}

/**
 * Copy the newest `keep` entries into a fresh buffer of capacity `cap` (cap >= keep).
 * Used when the buffer must grow, and when the limit dropped below the capacity after a
 * config reload: only the newest `limit` entries can ever influence a decision (a hit is
 * accepted iff the limit-th newest entry has left the window), so keeping the newest
 * preserves every decision; dropping older ones can only be more lenient afterwards if
 * the limit is raised again, never stricter.
 */
function rebuild(e: Entry, keep: number, cap: number): void {
  const buf = new Array<number>(cap).fill(0);
  const skip = e.size - keep;
  for (let i = 0; i < keep; i++) buf[i] = at(e, skip + i);
  e.buf = buf;
  e.head = 0;
  e.size = keep;
}

/** Append an accepted timestamp; the caller guarantees size < limit. */
function record(e: Entry, t: number, limit: number): void {
  if (e.size === e.buf.length) rebuild(e, e.size, Math.min(limit, Math.max(INITIAL_CAPACITY, e.buf.length * 2)));
  const cap = e.buf.length;
  let j = e.head + e.size;
  if (j >= cap) j -= cap;
  e.buf[j] = t;
  e.size++;
  // Keep the buffer sorted even if the caller's clock stepped backwards (rare: several
  // callers, NTP steps). The Redis sorted set is ordered by score, so both stores then
  // still agree on "oldest", and pruning from the head stays correct.
  for (let i = e.size - 1; i > 0; i--) {
    let cur = e.head + i;
    if (cur >= cap) cur -= cap;
    let prev = cur - 1;
    if (prev < 0) prev += cap;
    const p = e.buf[prev] as number;
    if (p <= t) break;
    e.buf[prev] = t;
    e.buf[cur] = p;
  }
}

export function createMemoryRateLimitStore(opts: MemoryRateLimitStoreOptions = {}): MemoryRateLimitStore {
  const maxKeys = opts.maxKeys ?? 1_000_000;
  const sweepIntervalMs = opts.sweepIntervalMs ?? 10_000;
  if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new RangeError('maxKeys must be an integer >= 1');
  if (!(sweepIntervalMs >= 0)) throw new RangeError('sweepIntervalMs must be >= 0');

  /*
   * Map iteration order is insertion order. Every time a key records an accepted hit it is
   * deleted and re-inserted, so the first key in the map is the one whose newest accepted
   * hit is the oldest (least recently *recorded*). When the map is full that key is
   * evicted: it is the one closest to expiring by itself, so eviction loses as little
   * state as possible. Eviction can only make a limit more lenient for the evicted client
   * (its counter restarts at zero), never stricter for anyone. A refused hit does not
   * move its key: a client hammering a full limit is then evicted before a client that is
   * still being accepted, which is the same leniency trade-off, bounded by maxKeys.
   */
  const map = new Map<string, Entry>();
  /** Largest nowMs seen: the store's clock for the sweep. */
  let clock = -Infinity;
  let closed = false;

  // Scratch arrays reused by every decision (hit is synchronous, so never re-entered).
  const scratchEntry: (Entry | undefined)[] = [];
  const scratchCount: number[] = [];

  function evictOldest(): void {
    const first = map.keys().next();
    if (!first.done) map.delete(first.value);
  }

  function hit(hits: readonly RateHit[], nowMs: number): RateDecision {
    if (closed) throw new Error('rate-limit store is closed');
    if (!Number.isFinite(nowMs)) throw new RangeError('nowMs must be a finite number');
    if (nowMs > clock) clock = nowMs;
    const n = hits.length;

    // Phase 1: evaluate every rule; nothing is recorded yet.
    let allowed = true;
    for (let i = 0; i < n; i++) {
      const h = hits[i] as RateHit;
      const { limit, windowMs } = h;
      if (!Number.isInteger(limit) || limit < 1 || !Number.isInteger(windowMs) || windowMs < 1) {
        throw new RangeError('invalid rate rule: limit and windowMs must be integers >= 1');
      }
      // Keys within one decision must be distinct (rateKey includes the rule id); a
      // duplicate would be evaluated twice against the same count and could overfill.
      for (let j = 0; j < i; j++) {
        if ((hits[j] as RateHit).key === h.key) throw new RangeError('duplicate rate key in one decision');
      }
      const e = map.get(h.key);
      let count = 0;
      if (e !== undefined) {
        prune(e, nowMs - windowMs);
        if (e.size > limit) rebuild(e, limit, limit);
        else if (e.buf.length > limit) rebuild(e, e.size, limit);
        e.windowMs = windowMs;
        count = e.size;
      }
      scratchEntry[i] = e;
      scratchCount[i] = count;
      if (h.enforce && count >= limit) allowed = false;
    }

    // Phase 2: record (only if every enforced rule had room, and only in rules with room)
    // and build the outcomes.
    const rules = new Array<RuleOutcome>(n);
    for (let i = 0; i < n; i++) {
      const h = hits[i] as RateHit;
      const { limit, windowMs } = h;
      let e = scratchEntry[i];
      let count = scratchCount[i] as number;
      const room = count < limit;
      if (allowed && room) {
        if (e === undefined) {
          e = newEntry(limit, windowMs);
        } else {
          map.delete(h.key);
        }
        while (map.size >= maxKeys) evictOldest();
        map.set(h.key, e);
        record(e, nowMs, limit);
        count++;
      } else if (e !== undefined && e.size === 0) {
        map.delete(h.key);
      }
      const resetMs = count > 0 && e !== undefined ? at(e, 0) + windowMs - nowMs : 0;
      rules[i] = { allowed: room, remaining: limit - count, resetMs };
      scratchEntry[i] = undefined; // do not keep evicted entries alive
    }
    return { allowed, rules };
  }

  // Incremental sweep: visits SWEEP_SLICE keys per turn of the event loop so that a
  // million keys never block request handling for tens of milliseconds.
  let sweepIter: Iterator<[string, Entry]> | undefined;
  let sweepImmediate: NodeJS.Immediate | undefined;

  function expired(e: Entry): boolean {
    return e.size === 0 || at(e, e.size - 1) <= clock - e.windowMs;
  }

  function sweepSlice(): void {
    sweepImmediate = undefined;
    const it = sweepIter;
    if (it === undefined) return;
    for (let visited = 0; visited < SWEEP_SLICE; visited++) {
      const r = it.next();
      if (r.done) {
        sweepIter = undefined;
        return;
      }
      // Deleting the current entry while iterating a Map is well defined.
      if (expired(r.value[1])) map.delete(r.value[0]);
    }
    sweepImmediate = setImmediate(sweepSlice);
  }

  function startSweep(): void {
    if (sweepIter !== undefined || closed) return; // previous sweep still running
    sweepIter = map.entries();
    sweepSlice();
  }

  const timer = sweepIntervalMs > 0 ? setInterval(startSweep, sweepIntervalMs) : undefined;
  timer?.unref();

  return {
    kind: 'memory',
    hit,
    ready: () => !closed,
    get size() {
      return map.size;
    },
    sweep(): void {
      for (const [k, e] of map) if (expired(e)) map.delete(k);
    },
    close(): Promise<void> {
      closed = true;
      if (timer !== undefined) clearInterval(timer);
      if (sweepImmediate !== undefined) clearImmediate(sweepImmediate);
      sweepIter = undefined;
      sweepImmediate = undefined;
      map.clear();
      return Promise.resolve();
    },
  };
}
