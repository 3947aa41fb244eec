/**
 * Answers for requests the HTTP parser rejects before a request object exists: malformed
 * HTTP (400), oversize headers (431), a client too slow to send its headers or body
 * (408). Each is an exchange like any other: it gets the security headers and a request
 * id, `Connection: close`, a request log line and an audit record (site `-`, stage
 * `parser`), and is counted. Nothing here can throw into the server.
 *
 * Two cases write nothing: bytes after a request that said `Connection: close` (Node
 * reports them as an error; RFC 9112 §9.6 says they are not processed, and the answer to
 * that request is still being written), and a parse error behind a request still being
 * answered on the same connection — a second answer would interleave with the first. The
 * connection is closed once the first answer is written.
 */
import { randomUUID } from 'node:crypto';
import { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorCode } from '../errors/codes.js';
import { ERROR_CODES } from '../errors/codes.js';
import { existingConnection } from '../pipeline/connection.js';
import type { GatewayContext } from '../pipeline/context.js';
import { Exchange } from '../pipeline/exchange.js';
import { peerOf } from '../pipeline/handle.js';
import { Refusal } from '../pipeline/refusal.js';
import { errorBody, finish, ownHeaders, rawResponse } from '../pipeline/respond.js';
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

export const PARSER = 'parser';

export function createClientErrorHandler(ctx: GatewayContext, runtime: () => Runtime): (err: Error & { code?: string }, socket: Socket) => void {
  return function onClientError(err, socket) {
    try {
      const conn = existingConnection(socket);
      if (err.code === 'HPE_CLOSED_CONNECTION') {
        // Data after `Connection: close`: not a request, and not to be answered.
        ctx.metrics.clientErrors.labels('connection_closed').inc();
        conn?.close();
        return;
      }
      const code = clientErrorCode(err);
      if (code === null || !socket.writable) {
        socket.destroy();
        return;
      }
      ctx.metrics.clientErrors.labels(code).inc();
      const rt = runtime();
      const ex = new Exchange(randomUUID(), new IncomingMessage(socket), null, socket, peerOf(socket), 'encrypted' in socket ? 'https' : 'http', rt.requestIdHeader, performance.now());
      ex.refusal = new Refusal(code, PARSER, err.code, undefined, err);
      ctx.inflight++;
      ctx.metrics.inflight.inc();
      if (conn !== undefined && conn.busy) {
        // An answer on this connection is still being written: close after it, write
        // nothing; a request that is too slow is cut off (its exchange sees the close).
        conn.close();
        ex.status = 0;
        if (code === 'request_timeout') socket.destroy();
        finish(ctx, ex);
        return;
      }
      ex.status = ERROR_CODES[code].status;
      const headers = ownHeaders(rt.headers, ex.extraHeaders, undefined, ex.scheme === 'https');
      socket.end(rawResponse(ex.status, headers, errorBody(code, ex.id)));
      // Don't wait for a client that is already misbehaving to read the answer.
      setTimeout(() => socket.destroy(), 1000).unref();
      finish(ctx, ex);
    } catch {
      socket.destroy();
    }
  };
}
