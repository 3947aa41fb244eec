/**
 * The in-memory revocation set every instance holds. Merging is idempotent and
 * order-independent (a later cut-off wins, the longer lifetime wins), so replays from a
 * resync or a duplicate push never do harm.
 */
import { entryKey, type RevocationEntry } from './types.js';

export class RevocationSet {
  private readonly jti = new Map<string, RevocationEntry>();
  private readonly subject = new Map<string, RevocationEntry>();
  private lastPrune = 0;

  apply(e: RevocationEntry): void {
    const map = e.kind === 'jti' ? this.jti : this.subject;
    const old = map.get(e.key);
    if (old === undefined) {
      map.set(e.key, e);
      return;
    }
    map.set(e.key, {
      kind: e.kind,
      key: e.key,
      before: Math.max(old.before, e.before),
      expiresAt: Math.max(old.expiresAt, e.expiresAt),
      createdAt: Math.min(old.createdAt, e.createdAt),
    });
  }

  revoked(jtiHash: string | null, subject: string, iat: number | null, nowMs: number): boolean {
    if (nowMs - this.lastPrune > 60_000) this.prune(nowMs);
    if (jtiHash !== null) {
      const j = this.jti.get(jtiHash);
      if (j !== undefined && j.expiresAt > nowMs) return true;
    }
    const s = this.subject.get(subject);
    if (s !== undefined && s.expiresAt > nowMs) {
      // No iat: the token cannot prove it was issued after the cut-off.
      if (iat === null || iat * 1000 <= s.before) return true;
    }
    return false;
  }

  prune(nowMs: number): void {
    this.lastPrune = nowMs;
    for (const m of [this.jti, this.subject]) for (const [k, e] of m) if (e.expiresAt <= nowMs) m.delete(k);
  }

  list(nowMs: number): RevocationEntry[] {
    const out: RevocationEntry[] = [];
    for (const m of [this.jti, this.subject]) for (const e of m.values()) if (e.expiresAt > nowMs) out.push(e);
    return out.sort((a, b) => a.createdAt - b.createdAt || entryKey(a.kind, a.key).localeCompare(entryKey(b.kind, b.key)));
  }

  get size(): number {
    return this.jti.size + this.subject.size;
  }
}
