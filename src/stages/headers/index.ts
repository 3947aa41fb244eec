/**
 * Response headers: the security headers every response carries (proxied or the
 * gateway's own refusals), per-site overrides, and removal of headers that reveal the
 * server software. Compiled once per site into flat lists, so applying it per response
 * is a loop over a few strings.
 */
import type { HeadersConfig } from '../../config/schema.js';

/** The Atlas defaults (Caddy `header` block). */
export const DEFAULT_SECURITY_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['Strict-Transport-Security', 'max-age=31536000; includeSubDomains; preload'],
  ['X-Frame-Options', 'SAMEORIGIN'],
  ['X-Content-Type-Options', 'nosniff'],
  ['Referrer-Policy', 'strict-origin-when-cross-origin'],
  ['Permissions-Policy', 'geolocation=(), microphone=(), camera=()'],
];

/** Headers that describe one connection, never forwarded in either direction (RFC 9110 §7.6.1). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const HSTS = 'strict-transport-security';

export interface HeaderPolicy {
  /** Headers to set on every response over plain HTTP, flat [name, value, ...], original case. */
  readonly set: readonly string[];
  /**
   * Headers to set on a response to a client whose connection is HTTPS: `set` plus the
   * default Strict-Transport-Security. RFC 6797 §7.2: HSTS is not sent over plain HTTP
   * (a UA ignores it there, and a MITM can strip or forge it). A level that names
   * Strict-Transport-Security in `headers.set` has said explicitly what to send, and then
   * it is in `set`, on every response.
   */
  readonly setHttps: readonly string[];
  /** Lowercased names that are dropped from upstream responses (set names included, since they are overwritten). */
  readonly drop: ReadonlySet<string>;
}

export function compileHeaderPolicy(...levels: ReadonlyArray<HeadersConfig | undefined>): HeaderPolicy {
  const set = new Map<string, [string, string]>();
  for (const [k, v] of DEFAULT_SECURITY_HEADERS) set.set(k.toLowerCase(), [k, v]);
  // `Server` reveals the software behind the gateway: always removed unless a level sets it.
  const removed = new Set<string>(['server', 'x-powered-by']);
  let explicitHsts = false;
  for (const level of levels) {
    if (!level) continue;
    for (const name of level.remove) {
      set.delete(name.toLowerCase());
      removed.add(name.toLowerCase());
    }
    for (const [name, value] of Object.entries(level.set)) {
      set.set(name.toLowerCase(), [name, value]);
      removed.delete(name.toLowerCase());
      if (name.toLowerCase() === HSTS) explicitHsts = true;
    }
  }
  const flat: string[] = [];
  const https: string[] = [];
  for (const [lower, [name, value]] of set) {
    https.push(name, value);
    if (lower !== HSTS || explicitHsts) flat.push(name, value);
  }
  const drop = new Set(removed);
  for (const lower of set.keys()) drop.add(lower);
  // An upstream's HSTS never passes either: on plain HTTP none is sent (§7.2), over HTTPS ours is.
  drop.add(HSTS);
  return Object.freeze({ set: Object.freeze(flat), setHttps: Object.freeze(https), drop });
}

/** The headers a response gets: with the default HSTS only when the client's connection is HTTPS. */
export function securityHeaders(policy: HeaderPolicy, https: boolean): readonly string[] {
  return https ? policy.setHttps : policy.set;
}

/** True when `lower` is a header name in the flat list (case-insensitive); lists are a few entries long. */
function namedIn(flat: readonly string[], lower: string): boolean {
  for (let i = 0; i < flat.length; i += 2) {
    const n = flat[i] as string;
    if (n.length === lower.length && n.toLowerCase() === lower) return true;
  }
  return false;
}

/**
 * Builds the response header list for a proxied response: the upstream's headers minus
 * hop-by-hop ones (and any named in its Connection header), minus dropped names, then the
 * policy's headers (HSTS when `https`), then `extra` (request id, rate-limit headers).
 */
export function buildResponseHeaders(
  policy: HeaderPolicy,
  upstream: Record<string, string | string[] | undefined>,
  extra: readonly string[],
  https: boolean,
): string[] {
  const out: string[] = [];
  const connection = upstream['connection'];
  let connectionTokens: Set<string> | null = null;
  if (connection !== undefined) {
    connectionTokens = new Set(
      String(connection)
        .toLowerCase()
        .split(',')
        .map((s) => s.trim()),
    );
  }
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined) continue;
    // undici hands us lowercased names.
    if (HOP_BY_HOP.has(name) || policy.drop.has(name)) continue;
    if (namedIn(extra, name)) continue;
    if (connectionTokens !== null && connectionTokens.has(name)) continue;
    if (typeof value === 'string') out.push(name, value);
    else for (const v of value) out.push(name, v);
  }
  const set = securityHeaders(policy, https);
  for (let i = 0; i < set.length; i++) out.push(set[i] as string);
  for (let i = 0; i < extra.length; i++) out.push(extra[i] as string);
  return out;
}
