/**
 * The admin listener: /metrics (Prometheus), /healthz (the process is up), /readyz (it
 * can take decisions: listening, not draining, stores reachable), and the admin API
 * routes other modules register (revocation, identities, audit queries). Bound to
 * loopback by default and a separate server from the public listeners, so nothing here
 * is ever reachable through them.
 *
 * API routes (`auth: true`) need `Authorization: Bearer <token>` matching the token in
 * `admin.token_file`; when no admin authentication is configured they are refused
 * (403 admin_auth_not_configured) — never open by default. /metrics, /healthz and
 * /readyz stay unauthenticated for scrapers and probes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors/codes.js';
import { ERROR_CODES } from '../errors/codes.js';
import type { Metrics } from '../observability/metrics.js';
import { errorBody } from '../pipeline/respond.js';

export interface AdminRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  /** Named groups of the route's path pattern. */
  readonly params: Record<string, string>;
  /** Reads a JSON body (at most 64 KiB); throws AdminError('bad_request') on bad input. */
  json(): Promise<unknown>;
  send(status: number, body: unknown): void;
}

export interface AdminRoute {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Exact path, or a RegExp with named groups (anchored by the caller). */
  readonly path: string | RegExp;
  readonly auth: boolean;
  handle(r: AdminRequest): void | Promise<void>;
}

/** A coded refusal from an admin route handler. */
export class AdminError extends Error {
  constructor(
    readonly code: ErrorCode,
    message?: string,
  ) {
    super(message ?? ERROR_CODES[code].message);
  }
}

export interface AdminDeps {
  readonly metrics: Metrics;
  /** null when ready, else the reason. */
  readonly notReady: () => string | null;
  /** The current routes (read per request, so reload and late registration work). */
  readonly routes: () => readonly AdminRoute[];
  /** The current admin token, or null when none is configured. */
  readonly token: () => string | null;
}

const MAX_BODY = 64 * 1024;

function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  res.end(body);
}

function sendError(res: ServerResponse, code: ErrorCode, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (!res.req.complete) extra = { ...extra, Connection: 'close' };
  res.writeHead(ERROR_CODES[code].status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', ...extra });
  res.end(errorBody(code, '-'));
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time check of a bearer token (hashing first makes the lengths equal). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(header);
  if (!m) return false;
  return timingSafeEqual(digest(m[1] as string), digest(token));
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        // Stop buffering; the answer closes the connection (the rest is never read).
        req.removeAllListeners('data');
        req.pause();
        reject(new AdminError('body_too_large'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size === 0) return resolve({});
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new AdminError('bad_request', 'the body is not valid JSON'));
      }
    });
    req.on('error', reject);
  });
}

export function createAdminServer(deps: AdminDeps): Server {
  return createServer({ requireHostHeader: false }, (req: IncomingMessage, res: ServerResponse) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://admin');
    } catch {
      return sendError(res, 'bad_request');
    }
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const builtin = path === '/metrics' || path === '/healthz' || path === '/readyz';
    if (builtin && method !== 'GET' && method !== 'HEAD') return sendError(res, 'method_not_allowed', { Allow: 'GET, HEAD' });
    if (method === 'GET' || method === 'HEAD') {
      if (path === '/metrics') {
        deps.metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'Content-Type': deps.metrics.registry.contentType, 'Cache-Control': 'no-store' });
            res.end(text);
          },
          () => sendError(res, 'internal_error'),
        );
        return;
      }
      if (path === '/healthz') return sendJson(res, 200, '{"status":"ok"}');
      if (path === '/readyz') {
        const reason = deps.notReady();
        return reason === null ? sendJson(res, 200, '{"status":"ready"}') : sendJson(res, 503, JSON.stringify({ status: 'not_ready', reason }));
      }
    }
    let pathMatched = false;
    for (const route of deps.routes()) {
      let params: Record<string, string> | null = null;
      if (typeof route.path === 'string') params = route.path === path ? {} : null;
      else {
        const m = route.path.exec(path);
        params = m ? { ...(m.groups ?? {}) } : null;
      }
      if (params === null) continue;
      pathMatched = true;
      if (route.method !== method) continue;
      if (route.auth) {
        const token = deps.token();
        if (token === null) return sendError(res, 'admin_auth_not_configured');
        if (!bearerMatches(req.headers.authorization, token)) return sendError(res, 'admin_unauthorized', { 'WWW-Authenticate': 'Bearer realm="gatehouse-admin"' });
      }
      const r: AdminRequest = {
        req,
        res,
        url,
        params,
        json: () => readJson(req),
        send: (status, body) => sendJson(res, status, JSON.stringify(body)),
      };
      Promise.resolve()
        .then(() => route.handle(r))
        .catch((err: unknown) => {
          if (err instanceof AdminError) sendError(res, err.code);
          else sendError(res, 'internal_error');
        });
      return;
    }
    sendError(res, pathMatched ? 'method_not_allowed' : 'not_found');
  });
}
