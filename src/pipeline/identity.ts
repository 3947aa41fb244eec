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
