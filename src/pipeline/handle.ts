/**
 * The request entry point: resolve who is asking, run the global filter, parse and
 * normalize the target, route to a site, run the site's stages, then proxy. Which stage
 * answers what is written down in docs/lifecycle.md; the order here is that order.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { routingHost } from '../http/host.js';
import { normalizePath, parseTarget } from '../http/path.js';
import { normalizeIp } from '../net/ip.js';
import type { HeaderPolicy } from '../stages/headers/index.js';
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
const SHUTTING_DOWN = new Refusal('shutting_down', 'server');

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
  ex.path = target.path;
  ex.query = target.query;
  const host = target.authority ?? req.headers.host;
  if (host === undefined || host === '') return refuse(ctx, ex, rt.headers, NO_HOST);
  if (hasDuplicateHost(req.rawHeaders)) return refuse(ctx, ex, rt.headers, BAD_HOST);
  ex.authority = host;
  const routing = routingHost(host);
  if (routing === null) return refuse(ctx, ex, rt.headers, BAD_HOST);
  ex.host = routing;
  const norm = normalizePath(target.path);
  if (norm === null) return refuse(ctx, ex, rt.headers, BAD_PATH);
  ex.normPath = norm;
  const site = rt.router.match(ex.host, norm);
  if (site === null) return refuse(ctx, ex, rt.headers, NO_SITE);
  ex.site = site;
  run(ctx, ex, site.headers, site.stages, 0, () => terminal(ex, site));
}

function begin(ctx: GatewayContext): void {
  ctx.inflight++;
  ctx.metrics.inflight.inc();
}

export function handleRequest(ctx: GatewayContext, rt: Runtime, req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https'): void {
  begin(ctx);
  const ex = new Exchange(randomUUID(), req, res, req.socket, peerOf(req.socket), scheme, rt.requestIdHeader, performance.now());
  res.once('close', () => finish(ctx, ex));
  start(ctx, rt, ex, proxyTerminal);
}

const proxyTerminal: Terminal = (ex, site) => site.proxy.handle(ex);

export function handleUpgrade(ctx: GatewayContext, rt: Runtime, req: IncomingMessage, socket: Duplex, head: Buffer, scheme: 'http' | 'https'): void {
  begin(ctx);
  const ex = new Exchange(randomUUID(), req, null, socket, peerOf(socket), scheme, rt.requestIdHeader, performance.now());
  socket.once('close', () => finish(ctx, ex));
  socket.on('error', () => socket.destroy());
  start(ctx, rt, ex, (e, site) => {
    // A long-lived tunnel is not started while draining (after the site's stages, so a
    // filtered client still gets a closed connection, not an answer).
    if (ctx.draining) refuse(ctx, e, site.headers, SHUTTING_DOWN);
    else site.proxy.upgrade(e, head);
  });
}
