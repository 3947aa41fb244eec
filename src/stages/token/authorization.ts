/**
 * Extracting a bearer token from the request, cheaply and strictly, before any crypto:
 *
 * - the raw header list is scanned, because Node keeps only the first of several
 *   `Authorization` headers: two of them are refused (which one would the upstream see?);
 * - an oversize header is refused on its length alone;
 * - the scheme is matched case-insensitively (RFC 7235 §2.1: schemes are
 *   case-insensitive, so `bearer x` is a bearer token) followed by one or more spaces;
 * - the credential must look like a compact JWS (three base64url segments), else it is
 *   an invalid token without ever reaching the verifier (`looksLikeJws`, checked only
 *   when the token is not in the verified-token cache: a cached token passed it).
 */
export type AuthorizationResult =
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'missing' }
  | { readonly kind: 'malformed'; readonly reason: string };

const MISSING: AuthorizationResult = { kind: 'missing' };
const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function isAuthorization(name: string): boolean {
  return name.length === 13 && name.toLowerCase() === 'authorization';
}

export function bearerToken(rawHeaders: readonly string[], maxTokenBytes: number): AuthorizationResult {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!isAuthorization(rawHeaders[i] as string)) continue;
    if (value !== undefined) return { kind: 'malformed', reason: 'several Authorization headers' };
    value = rawHeaders[i + 1] as string;
  }
  if (value === undefined) return MISSING;
  // "Bearer " is 7 bytes; anything longer than that plus the token limit is refused unread.
  if (value.length > maxTokenBytes + 7) return { kind: 'malformed', reason: 'Authorization header too large' };
  if (value.length < 7 || value.slice(0, 6).toLowerCase() !== 'bearer' || value.charCodeAt(6) !== 32) {
    // Another scheme (Basic, ...) or garbage: no bearer token in this request.
    return value.trim() === '' ? MISSING : { kind: 'malformed', reason: 'not a Bearer credential' };
  }
  let start = 7;
  while (start < value.length && value.charCodeAt(start) === 32) start++;
  const token = value.slice(start);
  if (token === '') return { kind: 'malformed', reason: 'empty Bearer credential' };
  return { kind: 'token', token };
}

/** Whether a credential has the compact-JWS shape (checked on a cache miss only). */
export function looksLikeJws(token: string): boolean {
  return JWS.test(token);
}
