/**
 * The admin listener: /metrics (Prometheus), /healthz (the process is up), /readyz (it
 * can take decisions: listening, not draining, stores reachable). Bound to loopback by
 * default and a separate server from the public listeners, so nothing here is ever
 * reachable through them.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { errorBody } from '../pipeline/respond.js';
import type { Metrics } from '../observability/metrics.js';

export interface AdminDeps {
  readonly metrics: Metrics;
  /** null when ready, else the reason. */
  readonly notReady: () => string | null;
}

function json(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  res.end(body);
}

export function createAdminServer(deps: AdminDeps): Server {
  const server = createServer({ requireHostHeader: false }, (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, errorBody('method_not_allowed', '-'));
    if (path === '/metrics') {
      deps.metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': deps.metrics.registry.contentType, 'Cache-Control': 'no-store' });
          res.end(text);
        },
        () => json(res, 500, errorBody('internal_error', '-')),
      );
      return;
    }
    if (path === '/healthz') return json(res, 200, '{"status":"ok"}');
    if (path === '/readyz') {
      const reason = deps.notReady();
      return reason === null ? json(res, 200, '{"status":"ready"}') : json(res, 503, JSON.stringify({ status: 'not_ready', reason }));
    }
    json(res, 404, errorBody('not_found', '-'));
  });
  return server;
}
