/**
 * The http-01 responder (RFC 8555 §8.3): while an order is pending, the CA fetches
 * `/.well-known/acme-challenge/<token>` from a plain-HTTP listener. gatehouse answers it
 * before anything else looks at the request (routing, the redirect to HTTPS, every
 * stage): the CA is not a client of any site, and the answer is public by design (the
 * key authorization proves control of the name, it grants nothing).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export const HTTP01_PREFIX = '/.well-known/acme-challenge/';
/** A token is base64url (RFC 8555 §8.1); anything else is not ours to answer. */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
/**
 * Shared-store lookups in flight at most: each unknown token costs a PostgreSQL query, so
 * a flood of made-up tokens is bounded (beyond it they go on like any request; the CA
 * retries its validation from several vantage points).
 */
export const MAX_REMOTE_LOOKUPS = 16;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export class Http01Responder {
  private readonly tokens = new Map<string, string>();
  /**
   * Tokens published by other instances (store: postgres): behind a load balancer the CA's
   * request may reach an instance that is not the one ordering. null: one instance.
   */
  remote: ((token: string) => Promise<string | null>) | null = null;
  private lookups = 0;

  add(token: string, keyAuthorization: string): void {
    this.tokens.set(token, keyAuthorization);
  }

  remove(token: string): void {
    this.tokens.delete(token);
  }

  get pending(): number {
    return this.tokens.size;
  }

  /**
   * Answers a challenge request, or passes the request to `next` untouched. Only a known
   * token is answered: an unknown one goes on like any request (the sites may serve
   * /.well-known themselves).
   */
  handle(req: IncomingMessage, res: ServerResponse, next: Handler): void {
    const url = req.url;
    if (url === undefined || !url.startsWith(HTTP01_PREFIX) || (req.method !== 'GET' && req.method !== 'HEAD')) return next(req, res);
    const token = url.slice(HTTP01_PREFIX.length);
    if (!TOKEN.test(token)) return next(req, res);
    const local = this.tokens.get(token);
    if (local !== undefined) return answer(req, res, local);
    if (this.remote === null || this.lookups >= MAX_REMOTE_LOOKUPS) return next(req, res);
    this.lookups++;
    this.remote(token)
      .finally(() => this.lookups--)
      .then(
        (shared) => (shared !== null ? answer(req, res, shared) : next(req, res)),
        // The shared store cannot say: not ours to answer; the request goes on like any other.
        () => next(req, res),
      );
  }
}

function answer(req: IncomingMessage, res: ServerResponse, keyAuthorization: string): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(keyAuthorization), 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : keyAuthorization);
}
