/**
 * Turning a refusal into the one response shape, and finishing an exchange (metrics and
 * the one log line per request). Every answer the gateway makes itself carries the
 * site's security headers (or the global ones before a site is known), the request id,
 * `Cache-Control: no-store` and a JSON body `{"error":{"code","message","request_id"}}`.
 * Clients get the code and a generic message; the cause goes to the log only.
 */
import { STATUS_CODES } from 'node:http';
import { ERROR_CODES, type ErrorCode } from '../errors/codes.js';
import { securityHeaders, type HeaderPolicy } from '../stages/headers/index.js';
import type { GatewayContext } from './context.js';
import type { Exchange } from './exchange.js';
import type { ExchangeObserver } from './observer.js';
import { connectionOf } from './connection.js';
import { Refusal } from './refusal.js';

export function errorBody(code: ErrorCode, requestId: string): string {
  return `{"error":{"code":"${code}","message":${JSON.stringify(ERROR_CODES[code].message)},"request_id":"${requestId}"}}`;
}

/** Header list for a gateway-made answer (without Content-Length/Connection). */
export function ownHeaders(policy: HeaderPolicy, extra: readonly string[], more: readonly string[] | undefined, https: boolean): string[] {
  const h = ['Content-Type', 'application/json', 'Cache-Control', 'no-store'];
  const set = securityHeaders(policy, https);
  for (let i = 0; i < set.length; i++) h.push(set[i] as string);
  for (let i = 0; i < extra.length; i++) h.push(extra[i] as string);
  if (more) for (let i = 0; i < more.length; i++) h.push(more[i] as string);
  return h;
}

/**
 * Serializes a complete HTTP/1.1 response for a raw socket (upgrade requests, parser
 * errors). Latin1, as Node writes the headers of every other response: a header value
 * passed on from an upstream keeps its bytes.
 */
export function rawResponse(status: number, headers: readonly string[], body: string): Buffer {
  let s = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) s += `${headers[i]}: ${headers[i + 1]}\r\n`;
  s += `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(s, 'latin1'), Buffer.from(body, 'utf8')]);
}

/**
 * Statuses after which the connection is closed: the request could not be framed or read
 * as sent (400, 408, 413, 431, 501), so the bytes that follow on the connection cannot be
 * trusted to start a new request.
 */
const CLOSING_STATUSES = new Set([400, 408, 413, 431, 501]);

export function refuse(ctx: GatewayContext, ex: Exchange, policy: HeaderPolicy, refusal: Refusal): void {
  ex.refusal = refusal;
  const siteId = ex.site?.id ?? '-';
  if (refusal.silent) {
    // The Atlas behaviour: close with zero bytes written, no status, no error page.
    ex.status = 0;
    if (refusal.drop) {
      ctx.metrics.ipDenials.labels(siteId, refusal.rule ?? 'allow').inc();
      ctx.denials.record(ex.clientIp, siteId, refusal.rule ?? 'allow');
    }
    connectionOf(ex.socket).close();
    ex.socket.destroy();
    if (ex.res === null) finish(ctx, ex);
    return;
  }
  const status = ERROR_CODES[refusal.code].status;
  ex.status = status;
  if (ctx.beforeRespond !== null && refusal.code !== 'audit_unavailable' && !(ex.res !== null && ex.res.headersSent)) {
    // Sync audit: the answer waits until its record is durable; failing that, 503.
    ctx.beforeRespond(ex).then(
      () => sendRefusal(ctx, ex, policy, refusal, status),
      () => refuse(ctx, ex, policy, AUDIT_UNAVAILABLE),
    );
    return;
  }
  sendRefusal(ctx, ex, policy, refusal, status);
}

const AUDIT_UNAVAILABLE = new Refusal('audit_unavailable', 'audit');

function sendRefusal(ctx: GatewayContext, ex: Exchange, policy: HeaderPolicy, refusal: Refusal, status: number): void {
  const body = errorBody(refusal.code, ex.id);
  const headers = ownHeaders(policy, ex.extraHeaders, refusal.headers, ex.clientHttps);
  const res = ex.res;
  if (res === null) {
    connectionOf(ex.socket).close();
    if (ex.socket.writable) ex.socket.end(rawResponse(status, headers, body));
    else ex.socket.destroy();
    finish(ctx, ex);
    return;
  }
  if (res.headersSent) {
    // Too late for a status: the client sees a truncated response, which is honest.
    res.destroy();
    return;
  }
  headers.push('Content-Length', String(Buffer.byteLength(body)));
  // An unread request body (early refusals of uploads), a request that could not be read
  // as sent, or a draining gateway: close the connection, and process nothing after it.
  if (ctx.draining || CLOSING_STATUSES.has(status) || hasUnreadBody(ex)) {
    headers.push('Connection', 'close');
    connectionOf(ex.socket).close();
  }
  res.writeHead(status, headers);
  res.end(body);
}

function hasUnreadBody(ex: Exchange): boolean {
  const req = ex.req;
  if (req.complete) return false;
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/** Longest user agent kept in a request line; the rest is cut and marked with "…". */
export const USER_AGENT_LOG_MAX = 256;

/**
 * The User-Agent as logged: at most USER_AGENT_LOG_MAX characters, control characters
 * written as \xNN so a log viewer never interprets them; null when there is none.
 */
export function logUserAgent(ua: string | undefined): string | null {
  if (ua === undefined) return null;
  const cut = ua.length > USER_AGENT_LOG_MAX ? ua.slice(0, USER_AGENT_LOG_MAX) : ua;
  // eslint-disable-next-line no-control-regex
  const escaped = /[\x00-\x1f\x7f]/.test(cut) ? cut.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`) : cut;
  return cut.length < ua.length ? `${escaped}…` : escaped;
}

/** Metrics and the request log line; called exactly once per exchange. */
export function finish(ctx: GatewayContext, ex: Exchange): void {
  if (ex.finished) return;
  ex.finished = true;
  // A stage whose work outlived the decision (the LLM route charging usage) ends it here,
  // before the log line and the observers read the exchange.
  if (ex.hook !== null) {
    try {
      ex.hook.finish(ex);
    } catch (err) {
      ctx.log.error({ event: 'exchange_hook_failed', req_id: ex.id, err: String(err) }, 'exchange hook failed');
    }
  }
  const ms = performance.now() - ex.start;
  const siteId = ex.site?.id ?? '-';
  ctx.metrics.countRequest(siteId, ex.status, ms / 1000);
  // A 5xx is the gateway or its upstream failing, not the client: it is logged at warn.
  const level = ex.status >= 500 ? 'warn' : 'info';
  if (ctx.log.isLevelEnabled(level)) {
    const r = ex.refusal;
    const line: Record<string, unknown> = {
      req_id: ex.id,
      site: siteId,
      method: ex.req.method,
      host: ex.host,
      path: ex.path,
      status: ex.status,
      client_ip: ex.clientIp,
      peer_ip: ex.peerIp,
      user_agent: logUserAgent(ex.req.headers['user-agent']),
      dur_ms: Math.round(ms * 1000) / 1000,
    };
    if (ex.upstreamMs >= 0) line.upstream_ms = Math.round(ex.upstreamMs * 1000) / 1000;
    if (ex.bytesIn > 0) line.bytes_in = ex.bytesIn;
    if (ex.bytesOut > 0) line.bytes_out = ex.bytesOut;
    if (r !== null) {
      line.decision = 'refused';
      line.stage = r.stage;
      if (r.rule !== undefined) line.rule = r.rule;
      line.code = r.code;
      if (r.cause !== undefined) line.cause = r.cause instanceof Error ? `${r.cause.name}: ${r.cause.message}` : String(r.cause);
    } else {
      line.decision = 'allowed';
    }
    const id = ex.identity;
    if (id !== null) {
      line.subject = id.subject;
      line.identity_type = id.type;
      if (id.agent !== null) line.agent = id.agent;
      if (id.domain !== null) line.domain = id.domain;
    }
    if (ex.notes !== null) Object.assign(line, ex.notes);
    if (ex.llm !== null) line.llm = ex.llm;
    // IP-filter drops are logged by the denial log (budgeted), not per request.
    if (!(r !== null && r.drop)) ctx.log[level](line, 'request');
  }
  for (let i = 0; i < ctx.observers.length; i++) {
    const o = ctx.observers[i] as ExchangeObserver;
    try {
      o.finished(ex, ms);
    } catch (err) {
      ctx.log.error({ event: 'observer_failed', observer: o.id, err: String(err) }, 'exchange observer failed');
    }
  }
  ctx.inflight--;
  ctx.metrics.inflight.dec();
  if (ctx.inflight === 0 && ctx.onIdle !== null) ctx.onIdle();
  // Last: it may start the next request pipelined on this connection.
  if (ex.release !== null) ex.release();
}
