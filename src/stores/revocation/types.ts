/**
 * Revocations behind one interface, with an embedded (SQLite) and a distributed (Redis)
 * implementation; one contract suite (`contract.test.ts`) runs against both.
 *
 * Every instance holds the WHOLE live revocation set in memory (`RevocationSet`), so the
 * per-request check is a Map lookup, never a store round trip. Stores differ only in how
 * an instance learns of revocations made elsewhere (SQLite: polling the shared file;
 * Redis: pub/sub push plus a sequence-numbered log for resync) and in `current()`: whether
 * the instance can vouch that its set is up to date.
 *
 * Lifetimes: an entry lives exactly as long as a token it revokes could still be valid —
 * a jti entry until that token's validity end (exp + leeway, or now + the maximum token
 * lifetime + leeway when exp is unknown), a subject cut-off until cut-off + maximum token
 * lifetime + leeway (tokens longer than the maximum lifetime are refused by the token
 * stage, so none issued before the cut-off can outlive the entry).
 */
export interface RevocationEntry {
  readonly kind: 'jti' | 'subject';
  /** jti: SHA-256 (hex) of the token id; subject: the subject. */
  readonly key: string;
  /** subject: tokens with iat (in ms) at or before this are revoked; jti: 0. */
  readonly before: number;
  /** Epoch ms after which the entry can no longer match a valid token. */
  readonly expiresAt: number;
  readonly createdAt: number;
}

export interface RevocationStore {
  readonly kind: 'sqlite' | 'redis';
  /** Loads the set (and starts following changes). Never rejects: a failed load leaves the set not current. */
  start(): Promise<void>;
  /** Durably records a revocation and applies it locally; rejects when the store cannot record it. */
  add(entry: RevocationEntry): Promise<void>;
  /** The live entries this instance knows. */
  list(nowMs: number): RevocationEntry[];
  /** true when the token (jti hash, subject, iat in seconds) is revoked. Synchronous, in memory. */
  revoked(jtiHash: string | null, subject: string, iat: number | null, nowMs: number): boolean;
  /** true while the instance can vouch that its set is current (within revocation.max_staleness). */
  current(nowMs: number): boolean;
  close(): Promise<void>;
}

/** The one key layout for an entry, used by every writer and reader (a reference bug was two layouts). */
export function entryKey(kind: RevocationEntry['kind'], key: string): string {
  return `${kind}:${key}`;
}

export function isEntry(v: unknown): v is RevocationEntry {
  const e = v as RevocationEntry;
  return (
    e !== null &&
    typeof e === 'object' &&
    (e.kind === 'jti' || e.kind === 'subject') &&
    typeof e.key === 'string' &&
    e.key !== '' &&
    Number.isFinite(e.before) &&
    Number.isFinite(e.expiresAt) &&
    Number.isFinite(e.createdAt)
  );
}
