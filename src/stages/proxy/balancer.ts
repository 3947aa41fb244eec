/**
 * Choosing a member of a site's upstream pool, compiled once per config generation:
 *
 * - `round_robin`: smooth weighted round robin (nginx's): over any run of requests each
 *   healthy member gets its weight's share, interleaved rather than in bursts;
 * - `least_requests`: the member with the fewest attempts in flight per unit of weight
 *   (ties go round the list);
 * - `hash`: weighted rendezvous hashing of the resolved client IP or a header: a key keeps
 *   its member while that member is healthy, and when a member leaves or returns only the
 *   keys it owned move. A request without the header is hashed on its client IP.
 *
 * Members that are unhealthy, or already tried for this request, are skipped. The retry
 * budget lives here too: retries per site may add at most `budget_ratio` to the requests
 * of the last 10 seconds, plus `budget_min` — so a wave of failures cannot multiply the
 * load on the members that are left.
 */
import type { UpstreamConfig } from '../../config/schema.js';
import type { Exchange } from '../../pipeline/exchange.js';
import type { UpstreamMember } from './member.js';

const WINDOW_S = 10;

/** FNV-1a over a string, then murmur3's finalizer so that near keys spread. */
function hash32(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class UpstreamBalancer {
  readonly members: readonly UpstreamMember[];
  private readonly weights: readonly number[];
  private readonly seeds: readonly number[];
  private readonly current: number[];
  private readonly mode: UpstreamConfig['balance'];
  private readonly hashHeader: string | null;
  private next = 0;
  // Retry budget: per-second buckets over the last WINDOW_S seconds.
  private readonly reqBuckets = new Array<number>(WINDOW_S).fill(0);
  private readonly retryBuckets = new Array<number>(WINDOW_S).fill(0);
  private bucketSecond = 0;
  private readonly budgetRatio: number;
  private readonly budgetMin: number;

  constructor(entries: ReadonlyArray<{ member: UpstreamMember; weight: number }>, u: UpstreamConfig) {
    this.members = entries.map((e) => e.member);
    this.weights = entries.map((e) => e.weight);
    this.seeds = entries.map((e) => hash32(e.member.id, 0x9e3779b9));
    this.current = entries.map(() => 0);
    this.mode = u.balance;
    this.hashHeader = u.hash_on.startsWith('header:') ? u.hash_on.slice(7).toLowerCase() : null;
    this.budgetRatio = u.retry.budget_ratio;
    this.budgetMin = u.retry.budget_min;
  }

  /** True when some member takes traffic. */
  anyHealthy(): boolean {
    for (const m of this.members) if (m.healthy) return true;
    return false;
  }

  /** The member for this attempt, or null when every healthy member was tried (or none is healthy). */
  pick(ex: Exchange, tried: ReadonlySet<UpstreamMember> | null): UpstreamMember | null {
    const ms = this.members;
    if (ms.length === 1) {
      const m = ms[0] as UpstreamMember;
      return m.healthy && (tried === null || !tried.has(m)) ? m : null;
    }
    if (this.mode === 'hash') return this.pickHash(ex, tried);
    if (this.mode === 'least_requests') return this.pickLeast(tried);
    // Smooth weighted round robin over the eligible members.
    let total = 0;
    let best = -1;
    for (let i = 0; i < ms.length; i++) {
      const m = ms[i] as UpstreamMember;
      if (!m.healthy || (tried !== null && tried.has(m))) continue;
      const w = this.weights[i] as number;
      this.current[i] = (this.current[i] as number) + w;
      total += w;
      if (best < 0 || (this.current[i] as number) > (this.current[best] as number)) best = i;
    }
    if (best < 0) return null;
    this.current[best] = (this.current[best] as number) - total;
    return ms[best] as UpstreamMember;
  }

  private pickLeast(tried: ReadonlySet<UpstreamMember> | null): UpstreamMember | null {
    const ms = this.members;
    const n = ms.length;
    const start = this.next;
    this.next = (this.next + 1) % n;
    let best: UpstreamMember | null = null;
    let bestLoad = Infinity;
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      const m = ms[i] as UpstreamMember;
      if (!m.healthy || (tried !== null && tried.has(m))) continue;
      const load = m.inflight / (this.weights[i] as number);
      if (load < bestLoad) {
        best = m;
        bestLoad = load;
      }
    }
    return best;
  }

  private pickHash(ex: Exchange, tried: ReadonlySet<UpstreamMember> | null): UpstreamMember | null {
    let key = ex.clientIp;
    if (this.hashHeader !== null) {
      const v = ex.req.headers[this.hashHeader];
      if (typeof v === 'string') key = v;
      else if (Array.isArray(v) && v.length > 0) key = v.join(',');
    }
    const ms = this.members;
    let best: UpstreamMember | null = null;
    let bestScore = -Infinity;
    for (let i = 0; i < ms.length; i++) {
      const m = ms[i] as UpstreamMember;
      if (!m.healthy || (tried !== null && tried.has(m))) continue;
      // Weighted rendezvous: score = w / -ln(u), u uniform in (0, 1) from hash(key, member).
      const u = (hash32(key, this.seeds[i] as number) + 0.5) / 4294967296;
      const score = (this.weights[i] as number) / -Math.log(u);
      if (score > bestScore) {
        best = m;
        bestScore = score;
      }
    }
    return best;
  }

  private roll(nowS: number): number {
    if (nowS !== this.bucketSecond) {
      const gap = Math.min(nowS - this.bucketSecond, WINDOW_S);
      for (let k = 1; k <= gap; k++) {
        const i = (this.bucketSecond + k) % WINDOW_S;
        this.reqBuckets[i] = 0;
        this.retryBuckets[i] = 0;
      }
      this.bucketSecond = nowS;
    }
    return nowS % WINDOW_S;
  }

  /** A request arrived at the proxy (the budget's base). */
  countRequest(nowMs: number): void {
    const i = this.roll(Math.floor(nowMs / 1000));
    this.reqBuckets[i] = (this.reqBuckets[i] as number) + 1;
  }

  /** Takes one retry from the budget; false when it is spent. */
  takeRetry(nowMs: number): boolean {
    const i = this.roll(Math.floor(nowMs / 1000));
    let reqs = 0;
    let retries = 0;
    for (let k = 0; k < WINDOW_S; k++) {
      reqs += this.reqBuckets[k] as number;
      retries += this.retryBuckets[k] as number;
    }
    if (retries >= this.budgetMin + this.budgetRatio * reqs) return false;
    this.retryBuckets[i] = (this.retryBuckets[i] as number) + 1;
    return true;
  }
}
