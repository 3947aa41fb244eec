/**
 * Answers for requests the HTTP parser rejects before a request object exists: malformed
 * HTTP (400), oversize headers (431), a client too slow to send its headers or body
 * (408, then the connection is closed). Each answer carries the security headers and a
 * request id like every other answer, and is counted; log lines are budgeted so a flood
 * of garbage cannot flood the log. Nothing here can throw into the server.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { ErrorCode } from '../errors/codes.js';
import { ERROR_CODES } from '../errors/codes.js';
import type { GatewayContext } from '../pipeline/context.js';
import { errorBody, ownHeaders, rawResponse } from '../pipeline/respond.js';
import type { Runtime } from '../pipeline/runtime.js';

export function clientErrorCode(err: { code?: string }): ErrorCode | null {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return null;
    case 'HPE_HEADER_OVERFLOW':
      return 'headers_too_large';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADER_TIMEOUT':
      return 'request_timeout';
    default:
      return 'bad_request';
  }
}

export function createClientErrorHandler(ctx: GatewayContext, runtime: () => Runtime): (err: Error & { code?: string }, socket: Socket) => void {
  let budget = 60;
  let suppressed = 0;
  const timer = setInterval(() => {
    if (suppressed > 0) ctx.log.warn({ event: 'client_error_summary', suppressed }, 'client errors (aggregated)');
    budget = 60;
    suppressed = 0;
  }, 60_000);
  timer.unref();
  return function onClientError(err, socket) {
    try {
      const code = clientErrorCode(err);
      if (code === null || !socket.writable) {
        socket.destroy();
        return;
      }
      ctx.metrics.clientErrors.labels(code).inc();
      if (budget > 0) {
        budget--;
        ctx.log.info({ event: 'client_error', code, parser_code: err.code, peer_ip: socket.remoteAddress }, 'request rejected by the HTTP parser');
      } else suppressed++;
      const rt = runtime();
      const id = randomUUID();
      const headers = ownHeaders(rt.headers, [rt.requestIdHeader, id], undefined);
      socket.end(rawResponse(ERROR_CODES[code].status, headers, errorBody(code, id)));
      // Don't wait for a client that is already misbehaving to read the answer.
      setTimeout(() => socket.destroy(), 1000).unref();
    } catch {
      socket.destroy();
    }
  };
}
