/**
 * Aggregation of IP-filter drops (and audit_unavailable refusals, which cannot be
 * recorded one by one while the store and spool are full): one record per client IP,
 * site, stage and rule per interval — "N connections from IP X closed by rule Y between
 * t1 and t2". A flood costs one record per source per interval, and nothing is silently
 * dropped: past `maxKeys` distinct sources, the rest are counted under client_ip null.
 */
import { emptyBody, type AuditBody, type Decision } from './record.js';

interface Bucket {
  ip: string | null;
  site: string | null;
  stage: string;
  rule: string | null;
  code: string;
  decision: Decision;
  status: number;
  count: number;
  first: number;
  last: number;
}

export class DropAggregator {
  private buckets = new Map<string, Bucket>();
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(maxKeys = 10_000, now: () => number = Date.now) {
    this.maxKeys = maxKeys;
    this.now = now;
  }

  add(ip: string, site: string | null, stage: string, rule: string | null, code: string, decision: Decision, status: number): void {
    let key = `${ip}\u0000${site ?? ''}\u0000${stage}\u0000${rule ?? ''}\u0000${code}`;
    let b = this.buckets.get(key);
    if (b === undefined && this.buckets.size >= this.maxKeys) {
      key = `\u0001\u0000${site ?? ''}\u0000${stage}\u0000${rule ?? ''}\u0000${code}`;
      b = this.buckets.get(key);
      if (b === undefined) {
        b = { ip: null, site, stage, rule, code, decision, status, count: 0, first: this.now(), last: 0 };
        this.buckets.set(key, b);
      }
    }
    const t = this.now();
    if (b === undefined) {
      b = { ip, site, stage, rule, code, decision, status, count: 0, first: t, last: t };
      this.buckets.set(key, b);
    }
    b.count++;
    b.last = t;
  }

  get size(): number {
    return this.buckets.size;
  }

  /** The interval's aggregate records; the buckets start over. */
  drain(instance: string | null): AuditBody[] {
    if (this.buckets.size === 0) return [];
    const out: AuditBody[] = [];
    for (const b of this.buckets.values()) {
      const r = emptyBody('drop_aggregate', new Date(b.last).toISOString());
      r.first_time = new Date(b.first).toISOString();
      r.instance = instance;
      r.site = b.site;
      r.client_ip = b.ip;
      r.decision = b.decision;
      r.status = b.status;
      r.stage = b.stage;
      r.rule = b.rule;
      r.code = b.code;
      r.count = b.count;
      out.push(r);
    }
    this.buckets = new Map();
    return out;
  }
}
