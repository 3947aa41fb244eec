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
 *
 * This runs on every authenticated request, so the accepting path allocates nothing but
 * the token string itself: the result IS the token (a string), only problems are
 * objects, and names/schemes are compared by character code instead of lower-casing
 * copies of them.
 */
/**
 * `missing`: no bearer credential at all, either no Authorization header or another
 * scheme (RFC 6750 §3.1: a request "attempted using an unsupported authentication
 * method" lacks authentication information: no error code); `reason` says which for the
 * log. `malformed`: an Authorization the gateway cannot read as one bearer credential.
 */
export type AuthorizationProblem = { readonly kind: 'missing'; readonly reason?: string } | { readonly kind: 'malformed'; readonly reason: string };
/** The token (a string), or why there is none. */
export type AuthorizationResult = string | AuthorizationProblem;

const MISSING: AuthorizationProblem = { kind: 'missing' };
const SEVERAL: AuthorizationProblem = { kind: 'malformed', reason: 'several Authorization headers' };
const TOO_LARGE: AuthorizationProblem = { kind: 'malformed', reason: 'Authorization header too large' };
const NOT_BEARER: AuthorizationProblem = { kind: 'missing', reason: 'not a Bearer credential' };
const EMPTY: AuthorizationProblem = { kind: 'malformed', reason: 'empty Bearer credential' };
const BAD_SEPARATOR: AuthorizationProblem = { kind: 'malformed', reason: 'Bearer not followed by a space' };
const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Whether `s` starting at `from` equals `lower` (ASCII letters only) ignoring case,
 * without allocating a lower-cased copy. `c | 0x20` maps exactly 'A'-'Z' onto 'a'-'z'
 * among the characters that can equal a lowercase letter, so this is exact, not a
 * heuristic (no other character, ASCII or not, compares equal).
 */
function equalsIgnoringCase(s: string, from: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) if ((s.charCodeAt(from + i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

function isAuthorization(name: string): boolean {
  return name.length === 13 && equalsIgnoringCase(name, 0, 'authorization');
}

const TWO_CREDENTIALS: AuthorizationProblem = { kind: 'malformed', reason: 'both Authorization and X-Api-Key' };

function isXApiKey(name: string): boolean {
  return name.length === 9 && equalsIgnoringCase(name, 0, 'x-api-key');
}

/**
 * The token from `X-Api-Key` (what the Anthropic SDK sends its API key in), for sites with
 * `auth.api_key_header`: exactly one such header and no Authorization, the value is the
 * token itself (no scheme). Two credentials are refused: which one would count?
 */
function apiKeyToken(rawHeaders: readonly string[], maxTokenBytes: number): AuthorizationResult | null {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!isXApiKey(rawHeaders[i] as string)) continue;
    if (value !== undefined) return SEVERAL;
    value = rawHeaders[i + 1] as string;
  }
  if (value === undefined) return null;
  if (value.length > maxTokenBytes) return TOO_LARGE;
  const v = value.trim();
  return v === '' ? EMPTY : v;
}

export function bearerToken(rawHeaders: readonly string[], maxTokenBytes: number, apiKeyHeader = false): AuthorizationResult {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!isAuthorization(rawHeaders[i] as string)) continue;
    if (value !== undefined) return SEVERAL;
    value = rawHeaders[i + 1] as string;
  }
  if (apiKeyHeader) {
    const k = apiKeyToken(rawHeaders, maxTokenBytes);
    if (k !== null) return value === undefined ? k : TWO_CREDENTIALS;
  }
  if (value === undefined) return MISSING;
  // "Bearer " is 7 bytes; anything longer than that plus the token limit is refused unread.
  if (value.length > maxTokenBytes + 7) return TOO_LARGE;
  if (value.length < 7 || !equalsIgnoringCase(value, 0, 'bearer') || value.charCodeAt(6) !== 32) {
    if (value.trim() === '') return MISSING;
    // `Bearer` alone, or followed by a tab or another control: a bearer credential written wrong.
    if (value.length >= 6 && equalsIgnoringCase(value, 0, 'bearer') && (value.length === 6 || value.charCodeAt(6) < 32)) return value.length === 6 ? EMPTY : BAD_SEPARATOR;
    // Another scheme (Basic, ...): no bearer token in this request.
    return NOT_BEARER;
  }
  let start = 7;
  while (start < value.length && value.charCodeAt(start) === 32) start++;
  if (start === value.length) return EMPTY;
  return value.slice(start);
}

/** Whether a credential has the compact-JWS shape (checked on a cache miss only). */
export function looksLikeJws(token: string): boolean {
  return JWS.test(token);
}
