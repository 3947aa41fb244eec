/**
 * The exchange: everything the pipeline knows about one request while it runs. One
 * object per request with a fixed shape (every field set in the constructor) so the
 * stages stay monomorphic on the hot path.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Identity, TokenFacts } from './identity.js';
import type { Refusal } from './refusal.js';
import type { CompiledSite } from './site.js';
import type { UpstreamHook } from './upstream-hook.js';
import type { LlmCall } from '../stages/llm/call.js';

export class Exchange {
  /** Request id, also sent to the client and the upstream. */
  readonly id: string;
  readonly req: IncomingMessage;
  /**
   * null for upgrade requests (the raw socket is in `socket`) — until the request stage
   * turns an upgrade the site does not allow into a plain request with a response of its own.
   */
  res: ServerResponse | null;
  readonly socket: Duplex;
  /** performance.now() when the request was received. */
  readonly start: number;
  /** The socket peer, normalized (`remote_ip`). */
  readonly peerIp: string;
  /** The resolved client (`client_ip`): the peer, or the first untrusted X-Forwarded-For hop. */
  clientIp: string;
  /** True when the peer is a trusted proxy (its X-Forwarded-* headers are extended, not replaced). */
  peerTrusted: boolean;
  /** Scheme the client used to reach us (http until TLS listeners exist). */
  readonly scheme: 'http' | 'https';
  /**
   * `h2` for an HTTP/2 stream (docs/lifecycle.md#http2): `req`/`res` are node:http2's
   * compatibility objects, `socket` is the stream (destroying it resets that stream only),
   * and the headers the stages read were made from the pseudo-headers (http/h2-request.ts).
   */
  readonly protocol: 'http/1.1' | 'h2';
  /** Normalized host name used for routing (lowercase, no port). */
  host = '';
  /** The canonical authority (`host[:port]`): the upstream's Host header and X-Forwarded-Host. */
  authority = '';
  /** The path sent upstream (http/path.ts canonicalPath) and the query, unchanged. */
  path = '';
  query = '';
  /** The path as received, still encoded (the `keep` reading starts from it). */
  rawPath = '';
  /** PATH_* flags of the raw path, checked against the site's `request` settings. */
  pathFlags = 0;
  /** The normalized form of `path`, used for every match (routing, path classes, auth paths, policy). */
  normPath = '';
  site: CompiledSite | null = null;
  /** Set by the token stage once a credential is verified; null for anonymous requests. */
  identity: Identity | null = null;
  /** Set with `identity`: token id hash, iat and validity, for the revocation stage. */
  token: TokenFacts | null = null;
  /** Response headers added by stages (rate-limit headers), flat [name, value, ...]. */
  readonly extraHeaders: string[];
  /** The refusal that decided, if any. */
  refusal: Refusal | null = null;
  /** Status sent (0 when the connection was closed without a response). */
  status = 0;
  /** Log fields added by stages (e.g. shadow refusals); null until a stage adds one. */
  notes: Record<string, unknown> | null = null;
  /** The request body when a stage had to read it (policy body_fields); the proxy sends it instead of the stream. */
  body: Buffer | null = null;
  /** Set by a stage whose work continues while the upstream answers (the LLM route); see upstream-hook.ts. */
  hook: UpstreamHook | null = null;
  /** The LLM call this exchange made (model, usage, time to first byte), for the log line, metrics and the audit record; null elsewhere. */
  llm: LlmCall | null = null;
  upstreamMs = -1;
  bytesIn = 0;
  bytesOut = 0;
  finished = false;
  /** Called once when the exchange finishes (the gateway releases its config generation). */
  release: (() => void) | null = null;

  constructor(
    id: string,
    req: IncomingMessage,
    res: ServerResponse | null,
    socket: Duplex,
    peerIp: string,
    scheme: 'http' | 'https',
    requestIdHeader: string,
    start: number,
    protocol: 'http/1.1' | 'h2' = 'http/1.1',
  ) {
    this.id = id;
    this.req = req;
    this.res = res;
    this.socket = socket;
    this.peerIp = peerIp;
    this.clientIp = peerIp;
    this.peerTrusted = false;
    this.scheme = scheme;
    this.protocol = protocol;
    this.start = start;
    this.extraHeaders = [requestIdHeader, id];
  }

  /**
   * Whether the client's connection is HTTPS (the response then carries HSTS): our own
   * TLS, or a trusted proxy (trusted_proxies) saying it received the request over HTTPS
   * in X-Forwarded-Proto. The last entry is the one the trusted peer itself wrote; any
   * entry left of it came from further away and is not believed.
   */
  get clientHttps(): boolean {
    if (this.scheme === 'https') return true;
    if (!this.peerTrusted) return false;
    const v = this.req.headers['x-forwarded-proto'];
    if (typeof v !== 'string') return false;
    const last = v.slice(v.lastIndexOf(',') + 1).trim();
    return last.length === 5 && last.toLowerCase() === 'https';
  }

  /**
   * Whether the request has a body to read or forward. HTTP/1.1 frames one with
   * Content-Length or Transfer-Encoding; an HTTP/2 request has one unless its HEADERS
   * frame ended the stream (a length is optional there: gRPC sends none).
   */
  hasBody(): boolean {
    const h = this.req.headers;
    const cl = h['content-length'];
    if (this.protocol === 'h2') return cl !== '0' && !(this.req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders;
    return cl !== undefined ? cl !== '0' : h['transfer-encoding'] !== undefined;
  }

  note(key: string, value: unknown): void {
    (this.notes ??= {})[key] = value;
  }
}
