/**
 * HTTP/2 on TLS listeners (docs/lifecycle.md#http2). The listener stays the HTTPS server
 * that serves HTTP/1.1; ALPN decides per connection. A connection that negotiated `h2`
 * is handed to an HTTP/2 session here, every other one goes on to the HTTP/1.1 parser
 * as before. Each stream then runs the same exchange as an HTTP/1.1 request
 * (pipeline/handle.ts handleStream).
 *
 * Abuse bounds, per connection (docs/configuration.md#http2):
 * - concurrent streams, stream and connection flow-control windows, header list size and
 *   count (SETTINGS; nghttp2 refuses what exceeds them);
 * - Rapid Reset (CVE-2023-44487): streams the client resets are counted per
 *   `reset_interval`; past `max_resets` the connection gets GOAWAY ENHANCE_YOUR_CALM and
 *   is closed;
 * - PING, SETTINGS and CONTINUATION floods, invalid frames and refused streams: Node's
 *   and nghttp2's own limits close the connection (fixed, not configurable);
 *   each case has a test (src/integration/http2-abuse.test.ts);
 * - a connection with no open stream for `http.keep_alive_timeout` is closed with GOAWAY,
 *   like an idle HTTP/1.1 keep-alive connection (this also bounds a client that never
 *   finishes its HEADERS).
 * Shutdown sends GOAWAY: streams already open finish, no new one is accepted.
 */
import { constants, createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Config, ListenerConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { peerOf } from '../pipeline/handle.js';

/** HTTP/2 is offered on a listener: TLS listeners unless `http2: false` (h2c is never offered). */
export function http2Enabled(l: ListenerConfig): boolean {
  return l.tls !== undefined && l.http2 !== false;
}

/** The ALPN protocols a listener offers, in preference order (one place, so other protocols merge in here). */
export function alpnProtocols(l: ListenerConfig): string[] {
  return http2Enabled(l) ? ['h2', 'http/1.1'] : ['http/1.1'];
}

export type StreamHandler = (req: Http2ServerRequest, res: Http2ServerResponse, peerIp: string) => void;

const kPeer = Symbol('gatehouse.h2.peer');
type PeerSession = Http2Session & { [kPeer]?: string };

/** Only these codes label gatehouse_http2_session_errors_total (anything else is `other`). */
const SESSION_ERROR_CODES = new Set([
  'ERR_HTTP2_ERROR',
  'ERR_HTTP2_SESSION_ERROR',
  'ERR_HTTP2_STREAM_ERROR',
  'ERR_HTTP2_PING_CANCEL',
  'ERR_HTTP2_TOO_MANY_INVALID_FRAMES',
  'ERR_HTTP2_MAX_PENDING_SETTINGS_ACK',
  'ERR_HTTP2_SETTINGS_CANCEL',
  'ERR_HTTP2_GOAWAY_SESSION',
  'ERR_HTTP2_INVALID_SESSION',
]);

interface Limits {
  readonly maxResets: number;
  readonly resetInterval: number;
  readonly idleMs: number;
}

function limitsOf(config: Config): Limits {
  const h = config.http.http2;
  return { maxResets: h.max_resets, resetInterval: h.reset_interval, idleMs: config.http.keep_alive_timeout };
}

function settingsOf(config: Config): import('node:http2').Settings {
  const h = config.http.http2;
  return {
    maxConcurrentStreams: h.max_concurrent_streams,
    initialWindowSize: h.initial_window_size,
    // The HTTP/2 measure (name + value + 32 per field) of a list whose HTTP/1.1 form is at
    // the limit stays under twice the limit plus the per-field overhead: up to here the
    // gateway answers 431 itself (http/h2-request.ts); past it nghttp2 resets the stream.
    maxHeaderListSize: 2 * config.http.max_header_bytes + 32 * (config.http.max_headers + 8),
    enablePush: false,
    enableConnectProtocol: false,
  };
}

/** One per TLS listener with HTTP/2: the sessions of that listener's `h2` connections. */
export class Http2Front {
  private readonly server: Http2Server;
  private readonly sessions = new Set<Http2Session>();
  private limits: Limits;
  private draining = false;
  /** The peer of the connection being handed over, for its session. */
  private pendingPeer = '';

  constructor(
    config: Config,
    onStream: StreamHandler,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.limits = limitsOf(config);
    this.server = createServer({
      settings: settingsOf(config),
      // Hard bound on fields per header list; the request_limits stage answers 431 above max_headers first.
      maxHeaderListPairs: 2 * config.http.max_headers + 8,
      // Node buffers at most this much per session (MB) before refusing new streams.
      maxSessionMemory: 10,
    });
    const handler = (req: Http2ServerRequest, res: Http2ServerResponse) => onStream(req, res, (req.stream.session as PeerSession)[kPeer] ?? '');
    this.server.on('request', handler);
    // Like HTTP/1.1: 100 Continue only once every stage admitted the request (stages/proxy).
    this.server.on('checkContinue', handler);
    // CONNECT: without a listener Node answers 405 itself, unlogged; the pipeline refuses
    // it instead (400 bad_request, rule h2_target: no tunnels), with a log line and record.
    this.server.on('connect', handler);
    this.server.on('session', (s: Http2Session) => this.onSession(s, config));
    this.server.on('sessionError', (err: NodeJS.ErrnoException) => this.sessionError(err));
    // A stream error is that stream's end (its exchange sees the close); nothing to crash on.
    this.server.on('streamError', () => undefined);
  }

  /** Routes connections that negotiated `h2` on `tls` here; the HTTP/1.1 parser keeps the rest. */
  attach(tls: TlsServer): void {
    const h1 = tls.listeners('secureConnection') as Array<(socket: TLSSocket) => void>;
    tls.removeAllListeners('secureConnection');
    tls.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') return this.take(socket);
      for (const l of h1) l.call(tls, socket);
    });
  }

  private take(socket: TLSSocket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    // node:http2 makes the session synchronously inside this emit ('session' event).
    this.pendingPeer = peerOf(socket);
    try {
      this.server.emit('connection', socket);
    } finally {
      this.pendingPeer = '';
    }
  }

  private onSession(session: Http2Session, config: Config): void {
    (session as PeerSession)[kPeer] = this.pendingPeer;
    this.sessions.add(session);
    this.metrics.http2Sessions.inc();
    this.metrics.http2SessionsActive.inc();
    const window = config.http.http2.initial_window_size;
    if (window > 65_535) session.setLocalWindowSize(window);
    let open = 0;
    let idle: NodeJS.Timeout | null = null;
    let windowStart = performance.now();
    let resets = 0;
    const armIdle = () => {
      idle = setTimeout(() => this.goaway(session, constants.NGHTTP2_NO_ERROR, 'idle'), this.limits.idleMs);
      idle.unref();
    };
    armIdle();
    session.on('stream', (stream: ServerHttp2Stream) => {
      open++;
      this.metrics.http2Streams.inc();
      if (idle !== null) {
        clearTimeout(idle);
        idle = null;
      }
      stream.on('aborted', () => {
        this.metrics.http2StreamResets.inc();
        const now = performance.now();
        if (now - windowStart > this.limits.resetInterval) {
          windowStart = now;
          resets = 0;
        }
        if (++resets > this.limits.maxResets) {
          this.log.warn({ event: 'http2_rapid_reset', peer_ip: (session as PeerSession)[kPeer], resets, interval_ms: this.limits.resetInterval }, 'HTTP/2 client reset too many streams; connection closed (GOAWAY ENHANCE_YOUR_CALM)');
          this.goaway(session, constants.NGHTTP2_ENHANCE_YOUR_CALM, 'rapid_reset');
        }
      });
      stream.once('close', () => {
        open--;
        if (open === 0 && !session.closed && !session.destroyed) armIdle();
      });
    });
    session.on('error', (err: NodeJS.ErrnoException) => this.sessionError(err));
    session.once('close', () => {
      if (idle !== null) clearTimeout(idle);
      this.sessions.delete(session);
      this.metrics.http2SessionsActive.dec();
    });
  }

  private sessionError(err: NodeJS.ErrnoException): void {
    const code = err.code !== undefined && SESSION_ERROR_CODES.has(err.code) ? err.code : 'other';
    this.metrics.http2SessionErrors.labels(code).inc();
    this.log.debug({ event: 'http2_session_error', code: err.code, err: err.message }, 'HTTP/2 connection closed on an error');
  }

  /**
   * GOAWAY with the last stream the gateway processed: the client retries nothing it
   * sent after it elsewhere, and open streams finish. ENHANCE_YOUR_CALM ends them too.
   */
  private goaway(session: Http2Session, code: number, reason: 'shutdown' | 'idle' | 'rapid_reset'): void {
    if (session.closed || session.destroyed) return;
    this.metrics.http2Goaways.labels(reason).inc();
    session.goaway(code);
    if (code === constants.NGHTTP2_NO_ERROR) session.close();
    else session.destroy();
  }

  /** New settings and bounds (reload) for connections made from now on. */
  update(config: Config): void {
    this.limits = limitsOf(config);
    this.server.updateSettings(settingsOf(config));
  }

  /** Shutdown: GOAWAY on every connection; streams already open finish. */
  drain(): void {
    this.draining = true;
    for (const s of this.sessions) this.goaway(s, constants.NGHTTP2_NO_ERROR, 'shutdown');
  }

  /** The grace is over: close whatever is still open. */
  destroyAll(): void {
    for (const s of this.sessions) s.destroy();
  }
}
