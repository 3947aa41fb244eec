/**
 * The request entry point: resolve who is asking, run the global filter, parse and
 * normalize the target, route to a site, run the site's stages, then proxy. Which stage
 * answers what is written down in docs/lifecycle.md; the order here is that order.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import { canonicalAuthority, parseAuthority } from '../http/host.js';
import { readH2Request, type H2Problem } from '../http/h2-request.js';
import { canonicalPath, normalizePath, parseTarget } from '../http/path.js';
import { normalizeIp } from '../net/ip.js';
import type { HeaderPolicy } from '../stages/headers/index.js';
import { connectionOf } from './connection.js';
import type { GatewayContext } from './context.js';
import { Exchange } from './exchange.js';
import { Refusal } from './refusal.js';
import { finish, refuse } from './respond.js';
import type { Runtime } from './runtime.js';
import type { CompiledSite } from './site.js';
import type { Stage, StageResult } from './stage.js';

const kPeer = Symbol('gatehouse.peer');
type PeerSocket = Duplex & { remoteAddress?: string; [kPeer]?: string };

/** The normalized socket peer, computed once per connection. */
export function peerOf(socket: Duplex): string {
  const s = socket as PeerSocket;
  let p = s[kPeer];
  if (p === undefined) {
    p = normalizeIp(s.remoteAddress ?? '') ?? '';
    s[kPeer] = p;
  }
  return p;
}

const BAD_TARGET = new Refusal('bad_request', 'request', 'target');
const BAD_PATH = new Refusal('bad_request', 'request', 'path');
const NO_HOST = new Refusal('missing_host', 'request', 'host');
const BAD_HOST = new Refusal('bad_request', 'request', 'host');

/** More than one Host header is a 400 (RFC 9112 §3.2): which one would the upstream believe? */
function hasDuplicateHost(raw: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}
const NO_SITE = new Refusal('misdirected_request', 'routing');
/** `http.unknown_host: close`: an unknown host looks exactly like a host the client may not reach. */
const NO_SITE_CLOSE = new Refusal('misdirected_request', 'routing', undefined, undefined, undefined, true);
const SHUTTING_DOWN = new Refusal('shutting_down', 'server');
const CONNECTION_CLOSED = new Refusal('connection_closed', 'server', undefined, undefined, undefined, true);

type Terminal = (ex: Exchange, site: CompiledSite) => void;

function run(ctx: GatewayContext, ex: Exchange, policy: HeaderPolicy, stages: readonly Stage[], from: number, next: () => void): void {
  for (let i = from; i < stages.length; i++) {
    const stage = stages[i] as Stage;
    let r: StageResult | Promise<StageResult>;
    try {
      r = stage.run(ex);
    } catch (err) {
      // Fail closed: a stage that cannot decide refuses.
      refuse(ctx, ex, policy, new Refusal('internal_error', stage.id, undefined, undefined, err));
      return;
    }
    if (r === undefined) continue;
    if (r instanceof Refusal) {
      refuse(ctx, ex, policy, r);
      return;
    }
    r.then(
      (res) => {
        if (ex.socket.destroyed) return;
        if (res === undefined) run(ctx, ex, policy, stages, i + 1, next);
        else refuse(ctx, ex, policy, res);
      },
      (err: unknown) => refuse(ctx, ex, policy, new Refusal('internal_error', stage.id, undefined, undefined, err)),
    );
    return;
  }
  next();
}

function start(ctx: GatewayContext, rt: Runtime, ex: Exchange, terminal: Terminal): void {
  const req = ex.req;
  if (ex.peerIp === '') {
    // The socket is already gone (no address): nothing to answer.
    ex.socket.destroy();
    return;
  }
  if (rt.trusted.size > 0 && rt.trusted.has(ex.peerIp)) {
    ex.peerTrusted = true;
    ex.clientIp = rt.resolveClientIp(ex.peerIp, req.headers['x-forwarded-for'] as string | undefined);
  }
  run(ctx, ex, rt.headers, rt.globalStages, 0, () => route(ctx, rt, ex, terminal));
}

function route(ctx: GatewayContext, rt: Runtime, ex: Exchange, terminal: Terminal): void {
  const req = ex.req;
  const target = parseTarget(req.url ?? '');
  if (target === null || target.path === '*') return refuse(ctx, ex, rt.headers, BAD_TARGET);
  ex.rawPath = target.path;
  ex.query = target.query;
  // RFC 9112 §3.2.2: an absolute-form target's authority replaces the Host header.
  const authority = target.authority ?? req.headers.host;
  if (authority === undefined || authority === '') return refuse(ctx, ex, rt.headers, NO_HOST);
  if (hasDuplicateHost(req.rawHeaders)) return refuse(ctx, ex, rt.headers, BAD_HOST);
  const parsed = parseAuthority(authority);
  if (parsed === null) return refuse(ctx, ex, rt.headers, BAD_HOST);
  ex.host = parsed.host;
  // The upstream gets this Host, generated from what was routed on, never the client's header.
  ex.authority = canonicalAuthority(parsed);
  // Escaped separators are read as what they encode for routing; the site's `request`
  // settings then refuse, keep or forward that reading (request stage). Matching is always
  // on the normalized form of the path that is forwarded (docs/lifecycle.md#one-reading).
  const cp = canonicalPath(target.path, true);
  if (cp.path === null) return refuse(ctx, ex, rt.headers, BAD_PATH);
  ex.path = cp.path;
  ex.pathFlags = cp.flags;
  const norm = normalizePath(cp.path);
  if (norm === null) return refuse(ctx, ex, rt.headers, BAD_PATH);
  ex.normPath = norm;
  const site = rt.router.match(ex.host, norm);
  if (site === null) return refuse(ctx, ex, rt.headers, rt.unknownHostCloses ? NO_SITE_CLOSE : NO_SITE);
  ex.site = site;
  run(ctx, ex, site.headers, site.stages, 0, () => terminal(ex, site));
}

function begin(ctx: GatewayContext): void {
  ctx.inflight++;
  ctx.metrics.inflight.inc();
}

/**
 * A request parsed on a connection. It runs when the connection's previous exchange has
 * finished, or is finished unprocessed if the connection is closing (pipeline/connection.ts).
 * `release` is called once when the exchange finishes, whatever happened to it.
 */
export function handleRequest(ctx: GatewayContext, rt: Runtime, req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https', release: () => void): void {
  begin(ctx);
  const ex = new Exchange(randomUUID(), req, res, req.socket, peerOf(req.socket), scheme, rt.requestIdHeader, performance.now());
  const conn = connectionOf(req.socket);
  conn.enqueue({
    run() {
      ex.release = () => {
        release();
        conn.done();
      };
      res.once('close', () => finish(ctx, ex));
      // The client asked to close after this request (or spoke HTTP/1.0 without keep-alive):
      // whatever it pipelined behind is not processed.
      if (!res.shouldKeepAlive) conn.close();
      start(ctx, rt, ex, proxyTerminal);
    },
    skip() {
      ex.release = release;
      notProcessed(ctx, ex);
    },
  });
}

/** A request that arrived on a connection already closing: logged and audited, never run. */
function notProcessed(ctx: GatewayContext, ex: Exchange): void {
  // The path it asked for, for the log line and the audit record (nothing decides on it).
  const target = parseTarget(ex.req.url ?? '');
  if (target !== null) {
    const cp = canonicalPath(target.path, true);
    ex.path = cp.path ?? target.path;
    ex.normPath = (cp.path !== null ? normalizePath(cp.path) : null) ?? '';
  }
  ex.refusal = CONNECTION_CLOSED;
  ex.status = 0;
  finish(ctx, ex);
}

const proxyTerminal: Terminal = (ex, site) => site.proxy.handle(ex);

/** Answers to an HTTP/2 request that cannot be read as one HTTP request: the parser-level refusals of HTTP/1.1. */
const H2_REFUSALS: Record<H2Problem, Refusal> = {
  target: new Refusal('bad_request', 'parser', 'h2_target'),
  scheme: new Refusal('bad_request', 'parser', 'h2_scheme'),
  pseudo_header: new Refusal('bad_request', 'parser', 'h2_pseudo_header'),
  connection_header: new Refusal('bad_header', 'parser', 'h2_connection_header'),
  uppercase_header: new Refusal('bad_header', 'parser', 'h2_uppercase_header'),
  headers_too_large: new Refusal('headers_too_large', 'parser', 'h2_header_bytes'),
};

/**
 * An HTTP/2 stream (server/http2.ts): the same exchange as an HTTP/1.1 request. Its
 * header list is read into the HTTP/1.1 shape first (http/h2-request.ts), then it runs
 * the same stages, routing and proxy. Streams are concurrent: there is no per-connection
 * queue, and `ex.socket` is the stream, so a silent refusal resets that stream only.
 */
export function handleStream(ctx: GatewayContext, rt: Runtime, req: Http2ServerRequest, res: Http2ServerResponse, peerIp: string, release: () => void): void {
  begin(ctx);
  const ex = new Exchange(randomUUID(), req as unknown as IncomingMessage, res as unknown as ServerResponse, req.stream, peerIp, 'https', rt.requestIdHeader, performance.now(), 'h2');
  ex.release = release;
  res.once('close', () => finish(ctx, ex));
  const reading = readH2Request(req.rawHeaders, 'https', rt.config.http.max_header_bytes);
  if (typeof reading === 'string') {
    ctx.metrics.clientErrors.labels(H2_REFUSALS[reading].code).inc();
    const target = req.url !== undefined ? parseTarget(req.url) : null;
    if (target !== null) ex.path = target.path;
    refuse(ctx, ex, rt.headers, H2_REFUSALS[reading]);
    return;
  }
  // The stages read these exactly as they read an HTTP/1.1 request's.
  Object.defineProperty(req, 'rawHeaders', { value: reading.rawHeaders });
  Object.defineProperty(req, 'headers', { value: reading.headers });
  start(ctx, rt, ex, proxyTerminal);
}

export function handleUpgrade(ctx: GatewayContext, rt: Runtime, req: IncomingMessage, socket: Duplex, head: Buffer, scheme: 'http' | 'https', release: () => void): void {
  begin(ctx);
  const ex = new Exchange(randomUUID(), req, null, socket, peerOf(socket), scheme, rt.requestIdHeader, performance.now());
  ex.release = release;
  socket.once('close', () => finish(ctx, ex));
  socket.on('error', () => socket.destroy());
  const conn = connectionOf(socket);
  if (conn.busy || conn.closing) {
    // Pipelined behind a request still being answered: Node has handed the socket over, so
    // nothing more is read from it; it is ended once that answer is written.
    conn.close();
    notProcessed(ctx, ex);
    return;
  }
  start(ctx, rt, ex, (e, site) => {
    // The request stage turned an upgrade the site does not allow into a plain request.
    if (e.res !== null) return site.proxy.handle(e);
    // A long-lived tunnel is not started while draining (after the site's stages, so a
    // filtered client still gets a closed connection, not an answer).
    if (ctx.draining) refuse(ctx, e, site.headers, SHUTTING_DOWN);
    else site.proxy.upgrade(e, head);
  });
}
