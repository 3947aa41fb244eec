/**
 * Verified tokens, keyed by the SHA-256 of the token (the token itself is not kept), so
 * steady-state requests skip the signature check. An entry is only good until the
 * token's `exp` (plus leeway); revocation and suspension are NOT cached here — those
 * stages check every request.
 *
 * Bounded to `max` entries. Eviction is CLOCK (second chance), the usual O(1)
 * approximation of least-recently-used: a hit only sets the entry's `used` bit, and
 * eviction walks from the oldest insertion, giving every entry used since it was last
 * passed one more round (moved to the newest end, bit cleared) and evicting the first
 * one that was not. Strict LRU would re-insert the entry on EVERY hit (Map delete + set,
 * about 0.3 µs, a tenth of a whole cache hit, plus hash-table churn); CLOCK pays that
 * only on insertion, which follows a signature check costing a hundred times more.
 * Expired entries are dropped when met by a hit or by the eviction walk.
 */
const SECOND_CHANCES = 64;

interface Slot<T> {
  readonly value: T;
  used: boolean;
}

export class TokenCache<T extends { readonly expiresAtMs: number }> {
  private readonly map = new Map<string, Slot<T>>();
  constructor(private readonly max: number) {}

  get(key: string, nowMs: number): T | undefined {
    const s = this.map.get(key);
    if (s === undefined) return undefined;
    if (s.value.expiresAtMs <= nowMs) {
      this.map.delete(key);
      return undefined;
    }
    s.used = true;
    return s.value;
  }

  set(key: string, value: T, nowMs: number): void {
    if (this.max === 0) return;
    if (this.map.size >= this.max && !this.map.has(key)) this.evictOne(nowMs);
    // A new entry starts unused: it survives one eviction pass only if it is hit again.
    this.map.set(key, { value, used: false });
  }

  /**
   * Removes one entry: the oldest one not used since the walk last passed it, looking at
   * most SECOND_CHANCES entries so that one insertion never walks a large cache that was
   * entirely hit (then the oldest after those is evicted, used or not). Amortized, every
   * second chance given was paid for by a hit.
   */
  private evictOne(nowMs: number): void {
    for (let i = 0; ; i++) {
      const first = this.map.entries().next();
      if (first.done === true) return;
      const [k, s] = first.value;
      this.map.delete(k);
      if (!s.used || s.value.expiresAtMs <= nowMs || i === SECOND_CHANCES) return;
      s.used = false;
      this.map.set(k, s);
    }
  }

  get size(): number {
    return this.map.size;
  }
}
