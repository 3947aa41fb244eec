/**
 * The admin listener: /metrics (Prometheus), /healthz (the process is up), /readyz (it
 * can take decisions: listening, not draining, stores reachable), and the admin API
 * routes other modules register (revocation, identities, audit queries). Bound to
 * loopback by default and a separate server from the public listeners, so nothing here
 * is ever reachable through them.
 *
 * API routes (`auth: true`) need `Authorization: Bearer <token>` matching the token in
 * `admin.token_file`, or an allowed client certificate (admin.client_certificates, over
 * HTTPS with admin.tls); when no admin authentication is configured they are refused
 * (403 admin_auth_not_configured) — never open by default (src/admin/authenticate.ts).
 * /metrics, /healthz and /readyz stay unauthenticated for scrapers and probes. Every API
 * call is logged (`admin_request`) with the principal that made it: `token`, or the
 * certificate identity from the allow list — never the token itself.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TlsOptions } from 'node:tls';
import type { ErrorCode } from '../errors/codes.js';
import { ERROR_CODES } from '../errors/codes.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { errorBody } from '../pipeline/respond.js';
import { authenticateAdmin, type AdminAuth, type AdminAuthDecision } from './authenticate.js';

export { bearerMatches } from './authenticate.js';
export type { AdminAuth } from './authenticate.js';

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
  /** The current admin authentication (read per API request, so a reload applies at once). */
  readonly auth: () => AdminAuth;
  readonly log: Logger;
  /** Serve HTTPS with these options (admin.tls); plain HTTP without. */
  readonly tls?: TlsOptions;
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

/** One line per admin API call, written when the answer is done (its status known). */
function logCall(log: Logger, req: IncomingMessage, res: ServerResponse, method: string, path: string, d: AdminAuthDecision): void {
  const fields = {
    event: 'admin_request',
    method,
    path,
    peer_ip: req.socket.remoteAddress ?? null,
    auth: d.ok ? d.method : null,
    principal: d.ok ? d.principal : null,
    ...(d.cert ? { cert_subject: d.cert.subject, cert_serial: d.cert.serial } : {}),
    ...(d.ok ? {} : { code: d.code, cause: d.cause, ...(d.tlsError !== undefined ? { tls_error: d.tlsError } : {}) }),
  };
  res.once('close', () => {
    const line = { ...fields, status: res.headersSent ? res.statusCode : null };
    if (d.ok) log.info(line, 'admin API call');
    else log.warn(line, 'admin API call refused');
  });
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
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
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
        const auth = deps.auth();
        // The wall clock, as the TLS handshake uses: certificate validity is about real time.
        const d = authenticateAdmin(req, auth, Date.now());
        logCall(deps.log, req, res, method, path, d);
        if (!d.ok) {
          // The challenge names the scheme that can succeed; a certificate has no HTTP challenge.
          const challenge: Record<string, string> = d.code === 'admin_unauthorized' && auth.token !== null ? { 'WWW-Authenticate': 'Bearer realm="gatehouse-admin"' } : {};
          return sendError(res, d.code, challenge);
        }
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
  };
  // HTTPS is the same server with TLS underneath: same routes, same answers.
  if (deps.tls) return createHttpsServer({ requireHostHeader: false, ...deps.tls }, handler) as unknown as Server;
  return createServer({ requireHostHeader: false }, handler);
}
