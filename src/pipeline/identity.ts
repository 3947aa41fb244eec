/**
 * Who is asking, once a token stage has verified it. null on the exchange until then
 * (and for routes without auth). Audit records and logs take their identity fields from
 * here; the token itself is never kept, only a hash of its id.
 */
export interface Identity {
  /** The token subject (`sub`), the identity registry key. */
  readonly subject: string;
  readonly type: 'agent' | 'human';
  readonly role: string | null;
  readonly domain: string | null;
  readonly agent: string | null;
  /** SHA-256 (hex) of the token's `jti`; never the token or the raw id. */
  readonly tokenIdHash: string | null;
}

/**
 * What the revocation stage needs about the verified token, set next to `identity` by
 * the token stage. Holds no secret: the token id only as its SHA-256.
 */
export interface TokenFacts {
  /** SHA-256 (hex) of `jti`, or null when the token has none (then only subject revocation applies). */
  readonly jtiHash: string | null;
  /** `iat` in epoch seconds, or null. */
  readonly iat: number | null;
  /** When the token stops being valid (exp + leeway, or iat + max lifetime), epoch ms. */
  readonly validUntilMs: number;
  /** The issuer id from auth.issuers that verified it. */
  readonly issuer: string;
}
