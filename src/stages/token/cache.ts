/**
 * Verified tokens, keyed by the SHA-256 of the token (the token itself is not kept), so
 * steady-state requests skip the signature check. Bounded: least recently used entries
 * are evicted first. An entry is only good until the token's `exp` (plus leeway);
 * revocation and suspension are NOT cached here — those stages check every request.
 */
export class TokenCache<T extends { readonly expiresAtMs: number }> {
  private readonly map = new Map<string, T>();
  constructor(private readonly max: number) {}

  get(key: string, nowMs: number): T | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (v.expiresAtMs <= nowMs) {
      this.map.delete(key);
      return undefined;
    }
    // Refresh recency: Map keeps insertion order, so the first key is the LRU one.
    this.map.delete(key);
    this.map.set(key, v);
    return v;
  }

  set(key: string, value: T): void {
    if (this.max === 0) return;
    if (this.map.size >= this.max && !this.map.has(key)) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
    this.map.set(key, value);
  }

  get size(): number {
    return this.map.size;
  }
}
