/**
 * The authority a request is routed by (Host header, or the authority of an absolute-form
 * target, RFC 9112 §3.2.2), parsed once into the form gatehouse decides on and forwards.
 *
 * Accepted, and nothing else: a DNS-style name (letters, digits, `-`, `_`, dot-separated
 * non-empty labels, one trailing dot ignored), an IPv4 address, or a bracketed IPv6
 * literal, then an optional port of 1–5 digits with a value of 1–65535. This is stricter
 * than the RFC 3986 reg-name on purpose: percent-encoded names, sub-delimiters (`;`, `,`,
 * `!`…) and non-numeric ports are read differently by upstream frameworks (some decode
 * `%2e`, some split at `,` or take the last `:`), so a Host that could mean two names is
 * refused instead of routed. The upstream's Host header is generated from the result
 * (canonicalAuthority), never copied from the request.
 */

export interface Authority {
  /** Lowercase name without a trailing dot, or `[ipv6]` in canonical (compressed, lowercase) form. */
  readonly host: string;
  /** The port the client named, or null. */
  readonly port: number | null;
}

const MAX_HOST_LENGTH = 253;

function isLabelChar(c: number): boolean {
  return (c >= 97 && c <= 122) /* a-z */ || (c >= 48 && c <= 57) /* 0-9 */ || c === 45 /* - */ || c === 95 /* _ */;
}

/** A lowercase dot-separated name with non-empty labels (the trailing dot already removed). */
function isName(h: string): boolean {
  if (h.length === 0 || h.length > MAX_HOST_LENGTH) return false;
  let labelStart = 0;
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c === 46 /* . */) {
      if (i === labelStart) return false;
      labelStart = i + 1;
    } else if (!isLabelChar(c)) {
      return false;
    }
  }
  return labelStart < h.length;
}

/** The canonical text of an IPv6 literal (WHATWG URL serialization), or null. */
function canonicalIpv6(inner: string): string | null {
  // Characters an IPv6 literal (with an embedded IPv4 tail) can hold; no zone id.
  if (!/^[0-9a-f:.]+$/.test(inner)) return null;
  try {
    const h = new URL(`http://[${inner}]/`).hostname;
    return h.startsWith('[') ? h : null;
  } catch {
    return null;
  }
}

function parsePort(s: string): number | null {
  if (s.length === 0 || s.length > 5) return null;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return null;
    n = n * 10 + (c - 48);
  }
  return n >= 1 && n <= 65535 ? n : null;
}

/** Parses an authority (`host`, `host:port`, `[v6]:port`); null when it is not one of the accepted forms. */
export function parseAuthority(authority: string): Authority | null {
  let hostPart: string;
  let portPart: string | null = null;
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const end = authority.indexOf(']');
    if (end < 0) return null;
    const rest = authority.slice(end + 1);
    if (rest !== '') {
      if (rest.charCodeAt(0) !== 58 /* : */) return null;
      portPart = rest.slice(1);
    }
    const v6 = canonicalIpv6(authority.slice(1, end).toLowerCase());
    if (v6 === null) return null;
    hostPart = v6;
  } else {
    const colon = authority.indexOf(':');
    if (colon >= 0) {
      portPart = authority.slice(colon + 1);
      hostPart = authority.slice(0, colon);
    } else {
      hostPart = authority;
    }
    hostPart = hostPart.toLowerCase();
    if (hostPart.charCodeAt(hostPart.length - 1) === 46 /* . */) hostPart = hostPart.slice(0, -1);
    if (!isName(hostPart)) return null;
  }
  let port: number | null = null;
  if (portPart !== null) {
    port = parsePort(portPart);
    if (port === null) return null;
  }
  return { host: hostPart, port };
}

/** The Host header gatehouse sends upstream (and X-Forwarded-Host for an untrusted client). */
export function canonicalAuthority(a: Authority): string {
  return a.port === null ? a.host : `${a.host}:${a.port}`;
}

/** The host a request is routed by, or null (see parseAuthority). */
export function routingHost(authority: string): string | null {
  return parseAuthority(authority)?.host ?? null;
}

/** A configured site host in the form requests are matched in (`*.` wildcards kept). */
export function canonicalSiteHost(h: string): string {
  let host = h.trim().toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host.startsWith('[') && host.endsWith(']')) return canonicalIpv6(host.slice(1, -1)) ?? host;
  if (host.includes(':')) return canonicalIpv6(host) ?? host;
  return host;
}
