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

export class Http01Responder {
  private readonly tokens = new Map<string, string>();

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
   * Answers a challenge request and returns true, or returns false and leaves the request
   * to the normal path. Only a known token is answered: an unknown one goes on like any
   * request (the sites may serve /.well-known themselves).
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url;
    if (url === undefined || !url.startsWith(HTTP01_PREFIX) || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    const token = url.slice(HTTP01_PREFIX.length);
    if (!TOKEN.test(token)) return false;
    const keyAuthorization = this.tokens.get(token);
    if (keyAuthorization === undefined) return false;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(keyAuthorization), 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : keyAuthorization);
    return true;
  }
}
