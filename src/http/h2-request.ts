/**
 * Reading an HTTP/2 request into the header list the pipeline decides on — the same one
 * an HTTP/1.1 request gives (docs/lifecycle.md#http2). Stages, the Host check, routing
 * and the proxy then treat both alike; nothing downstream sees a pseudo-header.
 *
 * - `:path` is the request target: it must be origin-form (`/…`); an absolute URL, `*`
 *   or a missing `:path` (CONNECT) is refused like a bad HTTP/1.1 target.
 * - `:authority` becomes the `host` header. A `host` header that names the same
 *   authority is kept once; one that differs is kept beside it, so the duplicate-Host
 *   check refuses the request as it refuses two Host lines (RFC 9113 §8.3.1).
 * - `:scheme` must be the listener's scheme: the upstream is told the scheme the
 *   gateway was reached by, so a request claiming another one has two readings.
 * - Connection-specific headers (Connection, Keep-Alive, Proxy-Connection,
 *   Transfer-Encoding, Upgrade, and TE other than `trailers`) and uppercase names make a
 *   request malformed (RFC 9113 §8.2.1, §8.2.2). nghttp2 already resets such streams;
 *   this is the same rule stated where the pipeline can answer and log it.
 * - Cookie crumbs are joined into one `cookie` header with `; ` (RFC 9113 §8.2.3), so an
 *   HTTP/1.1 upstream gets the single Cookie line it expects.
 * - Size: the header list is measured as its HTTP/1.1 form (request line, `name: value`
 *   lines) against `http.max_header_bytes`, so one limit means the same on both.
 */

export type H2Problem = 'target' | 'scheme' | 'pseudo_header' | 'connection_header' | 'uppercase_header' | 'headers_too_large';

export interface H2Reading {
  /** Regular headers in received order, `host` first (from `:authority`), cookies joined. */
  readonly rawHeaders: string[];
  /** The same as a Node IncomingMessage `headers` object: lowercase names, duplicates joined. */
  readonly headers: Record<string, string | string[]>;
}

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/** Node's IncomingMessage keeps the first of these and drops later copies; every other duplicate is joined. */
const SINGLE = new Set(['content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization', 'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag', 'last-modified', 'server', 'age', 'expires']);

function hasUppercase(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) return true;
  }
  return false;
}

/** The HTTP/1.1 request line and CRLFs this list would take (`METHOD SP target SP HTTP/1.1 CRLF`, `name: value CRLF`, final CRLF). */
function h1Size(method: string, path: string, raw: readonly string[]): number {
  let n = method.length + path.length + 12;
  for (let i = 0; i < raw.length; i += 2) n += (raw[i] as string).length + (raw[i + 1] as string).length + 4;
  return n + 2;
}

/**
 * `raw`: node:http2's raw header list (pseudo-headers first). `scheme`: the listener's.
 * Returns the reading, or what is wrong with the request.
 */
export function readH2Request(raw: readonly string[], scheme: 'http' | 'https', maxHeaderBytes: number): H2Reading | H2Problem {
  let method = '';
  let path: string | null = null;
  let authority: string | null = null;
  let reqScheme: string | null = null;
  const regular: string[] = [];
  let cookies: string[] | null = null;
  let cookieAt = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':method') method = value;
      else if (name === ':path') path = value;
      else if (name === ':authority') authority = value;
      else if (name === ':scheme') reqScheme = value;
      // :protocol (extended CONNECT, RFC 8441) and anything else: no tunnels over HTTP/2.
      else return 'pseudo_header';
      continue;
    }
    if (hasUppercase(name)) return 'uppercase_header';
    if (CONNECTION_SPECIFIC.has(name)) return 'connection_header';
    if (name === 'te' && value.trim().toLowerCase() !== 'trailers') return 'connection_header';
    if (name === 'cookie') {
      if (cookies === null) {
        cookies = [];
        cookieAt = regular.length;
        regular.push('cookie', '');
      }
      cookies.push(value);
      continue;
    }
    regular.push(name, value);
  }
  if (path === null || path.charCodeAt(0) !== 47 /* / */) return 'target';
  if (reqScheme !== scheme) return 'scheme';
  if (cookies !== null) regular[cookieAt + 1] = cookies.join('; ');
  let rawHeaders = regular;
  if (authority !== null) {
    // One host entry when they agree (the only one, or equal); both when they differ.
    let hostAt = -1;
    for (let i = 0; i < regular.length; i += 2) {
      if (regular[i] === 'host') {
        hostAt = i;
        break;
      }
    }
    if (hostAt < 0 || (regular[hostAt + 1] as string).toLowerCase() !== authority.toLowerCase()) rawHeaders = ['host', authority, ...regular];
  }
  if (h1Size(method, path, rawHeaders) > maxHeaderBytes) return 'headers_too_large';
  const headers: Record<string, string | string[]> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    const prev = headers[name];
    if (prev === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    else if (!SINGLE.has(name)) headers[name] = `${prev}, ${value}`;
  }
  return { rawHeaders, headers };
}
