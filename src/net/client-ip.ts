/**
 * Which address is "the client". Every consumer (IP filter, rate limits, logs, audit) uses
 * the resolver's answer, so there is exactly one place that decides whether to believe
 * X-Forwarded-For.
 *
 * X-Forwarded-For is only as trustworthy as the hop that appended each entry: entries are
 * appended left to right, so walking right to left from our peer, an entry is believable
 * only while everything to its right (and the peer) is a proxy we trust. The first
 * untrusted entry is therefore the furthest address some trusted proxy vouched for.
 */
import { compileCidrs, normalizeIp } from './ip.js';

/** Returns the normalized client address for a connection from `peer` (already normalized). */
export type ClientIpResolver = (peer: string, xForwardedFor: string | undefined) => string;

export interface ClientIpOptions {
  /** CIDRs / addresses of proxies whose X-Forwarded-For entries are believed. */
  readonly trustedProxies: readonly string[];
}

function isOws(c: number): boolean {
  return c === 32 || c === 9; // SP / HTAB (RFC 9110 optional whitespace)
}

/**
 * Normalizes one X-Forwarded-For element: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]`,
 * `[::1]:80` (surrounding whitespace allowed). Returns null for anything else, including
 * tokens some proxies emit such as `unknown` or obfuscated identifiers.
 */
export function parseForwardedEntry(entry: string): string | null {
  let start = 0;
  let end = entry.length;
  while (start < end && isOws(entry.charCodeAt(start))) start++;
  while (end > start && isOws(entry.charCodeAt(end - 1))) end--;
  return parseEntryRange(entry, start, end);
}

/** `parseForwardedEntry` on value[start, end) (already trimmed). */
function parseEntryRange(value: string, start: number, end: number): string | null {
  if (start >= end) return null;
  if (value.charCodeAt(start) === 91 /* [ */) {
    const close = value.indexOf(']', start);
    if (close < 0 || close >= end) return null;
    if (close + 1 < end && !isPort(value, close + 1, end)) return null;
    // Pass the brackets through: normalizeIp accepts `[v6]` and rejects `[v4]`.
    return normalizeIp(value.slice(start, close + 1));
  }
  const firstColon = value.indexOf(':', start);
  if (firstColon >= 0 && firstColon < end) {
    const lastColon = value.lastIndexOf(':', end - 1);
    // Exactly one colon: IPv4 with a port. Two or more: a bare IPv6 (which cannot carry
    // an unbracketed port, so `::1:80` is read as the address ::1:80).
    if (firstColon === lastColon) {
      if (!isPort(value, firstColon, end)) return null;
      const ip = normalizeIp(value.slice(start, firstColon));
      // Only IPv4 may take this form; normalizeIp of a colon-free string is IPv4 or null.
      return ip;
    }
  }
  return normalizeIp(start === 0 && end === value.length ? value : value.slice(start, end));
}

/** Whether value[at, end) is `:` followed by a decimal port 0..65535. */
function isPort(value: string, at: number, end: number): boolean {
  if (value.charCodeAt(at) !== 58 /* : */) return false;
  const n = end - at - 1;
  if (n < 1 || n > 5) return false;
  let port = 0;
  for (let i = at + 1; i < end; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return false;
    port = port * 10 + (c - 48);
  }
  return port <= 65535;
}

/**
 * Splits an X-Forwarded-For value (possibly several headers joined with `, `) into its
 * elements, left to right, trimmed, empty elements dropped (RFC 9110 list syntax). The
 * elements are NOT validated; map them through `parseForwardedEntry`. For logging and
 * tests: the resolver itself walks the string without building this array.
 */
export function parseForwardedFor(value: string | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  let start = 0;
  while (start <= value.length) {
    let comma = value.indexOf(',', start);
    if (comma < 0) comma = value.length;
    let s = start;
    let e = comma;
    while (s < e && isOws(value.charCodeAt(s))) s++;
    while (e > s && isOws(value.charCodeAt(e - 1))) e--;
    if (s < e) out.push(value.slice(s, e));
    start = comma + 1;
  }
  return out;
}

/**
 * Builds the resolver. Rules, for a peer we trust:
 * - walk X-Forwarded-For right to left, skipping entries that are trusted proxies;
 * - the first untrusted entry is the client;
 * - if every entry is trusted, the leftmost one is the client;
 * - an unparseable entry ends the walk: the answer is the last valid address walked (the
 *   trusted hop that handed us the garbage), never the garbage or anything left of it.
 * An untrusted peer is the client, whatever its X-Forwarded-For says.
 */
export function createClientIpResolver(opts: ClientIpOptions): ClientIpResolver {
  const trusted = compileCidrs(opts.trustedProxies);
  // No trusted proxies: XFF can never matter, so do no work at all per request.
  if (trusted.size === 0) return (peer) => peer;

  return (peer, xff) => {
    if (xff === undefined || xff.length === 0 || !trusted.has(peer)) return peer;
    let last = peer;
    let end = xff.length;
    // Walk elements right to left by index, so nothing left of the answer is ever parsed.
    while (end > 0) {
      const comma = xff.lastIndexOf(',', end - 1);
      let s = comma + 1;
      let e = end;
      end = comma < 0 ? 0 : comma;
      while (s < e && isOws(xff.charCodeAt(s))) s++;
      while (e > s && isOws(xff.charCodeAt(e - 1))) e--;
      if (s === e) continue; // empty list element (`a,,b`, trailing comma)
      const ip = parseEntryRange(xff, s, e);
      if (ip === null) return last;
      if (!trusted.has(ip)) return ip;
      last = ip;
    }
    return last;
  };
}
