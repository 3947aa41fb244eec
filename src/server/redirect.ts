/**
 * The plain-HTTP listener of a TLS deployment (`redirect_https: true`): every request is
 * answered with 308 to the same path and query on the HTTPS listener. 308, not 301: the
 * method and body are kept. Only host names a site serves are redirected (421
 * otherwise), so the listener cannot be used to bounce clients to arbitrary hosts. Each
 * answer carries the global security headers and a request id like every other answer.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { normalizeHost } from '../config/validate.js';
import { routingHost } from '../http/host.js';
import type { GatewayContext } from '../pipeline/context.js';
import { errorBody, ownHeaders, rawResponse } from '../pipeline/respond.js';
import type { Runtime } from '../pipeline/runtime.js';

interface HostSet {
  readonly exact: ReadonlySet<string>;
  readonly wildcard: ReadonlySet<string>;
}

const hostSets = new WeakMap<Runtime, HostSet>();

function servedHosts(rt: Runtime): HostSet {
  let s = hostSets.get(rt);
  if (!s) {
    const exact = new Set<string>();
    const wildcard = new Set<string>();
    for (const site of rt.config.sites) {
      for (const h of site.hosts) {
        const host = normalizeHost(h);
        if (host.startsWith('*.')) wildcard.add(host.slice(2));
        else exact.add(host);
      }
    }
    s = { exact, wildcard };
    hostSets.set(rt, s);
  }
  return s;
}

/** Host names and addresses that may go into a Location header (stricter than routing). */
const LOCATION_HOST = /^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/;

/** The host of a Host header without its port; null when it is not a plain host name or address. */
export function hostOf(header: string | undefined): string | null {
  const host = header ? routingHost(header.trim()) : null;
  return host !== null && LOCATION_HOST.test(host) ? host : null;
}

function served(rt: Runtime, host: string): boolean {
  const s = servedHosts(rt);
  if (s.exact.has(host)) return true;
  const dot = host.indexOf('.');
  return dot > 0 && s.wildcard.has(host.slice(dot + 1));
}

/** `scheme://authority` of an absolute-form target; what follows it is the path and query as sent. */
const ABSOLUTE = /^https?:\/\/[^/?#]*/i;

/**
 * Path and query of the request target exactly as received (origin-form, or what follows
 * the authority of an absolute-form target): no slashes merged, no dot segments resolved,
 * no re-encoding, so the HTTPS request is the one the client made. A leading `//` stays:
 * the Location is always absolute (`https://host` + this), so it can never be read as a
 * scheme-relative reference to another host.
 */
export function pathAndQuery(url: string | undefined): string {
  if (!url || url === '*') return '/';
  if (url.startsWith('/')) return url;
  // Only absolute-form http(s) targets carry a path worth keeping; anything else redirects to /.
  const m = ABSOLUTE.exec(url);
  if (m === null) return '/';
  const rest = url.slice(m[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/** The Location of the redirect: always `https://` + a served host (+ port) + the path as received. */
export function locationFor(host: string, port: number | null, url: string | undefined): string {
  return `https://${host}${port === null || port === 443 ? '' : `:${port}`}${pathAndQuery(url)}`;
}

export interface Redirector {
  request(req: IncomingMessage, res: ServerResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex): void;
}

/**
 * `httpsPort()` is the port of the first HTTPS listener (known once it listens);
 * 443 is left out of the Location.
 */
export function createRedirector(ctx: GatewayContext, runtime: () => Runtime, httpsPort: () => number | null): Redirector {
  /** null: close with zero bytes (an unknown host with `http.unknown_host: close`). */
  function answer(req: IncomingMessage): { status: number; headers: string[]; body: string } | null {
    const rt = runtime();
    const id = randomUUID();
    const host = hostOf(req.headers.host);
    if (host !== null && !served(rt, host) && rt.unknownHostCloses) return null;
    if (host === null || !served(rt, host)) {
      const code = host === null ? 'missing_host' : 'misdirected_request';
      return { status: host === null ? 400 : 421, headers: ownHeaders(rt.headers, [rt.requestIdHeader, id], undefined, false), body: errorBody(code, id) };
    }
    const location = locationFor(host, httpsPort(), req.url);
    const headers = ['Location', location, 'Cache-Control', 'no-store', rt.requestIdHeader, id];
    for (let i = 0; i < rt.headers.set.length; i++) headers.push(rt.headers.set[i] as string);
    return { status: 308, headers, body: '' };
  }

  return {
    request(req, res) {
      const t0 = performance.now();
      const a = answer(req);
      if (a === null) {
        req.socket.destroy();
        ctx.metrics.countRequest('-', 0, (performance.now() - t0) / 1000);
        return;
      }
      a.headers.push('Content-Length', String(Buffer.byteLength(a.body)));
      // Never read a body we redirect: close instead of draining it.
      if (!req.complete && (req.headers['content-length'] ?? '0') !== '0') a.headers.push('Connection', 'close');
      res.writeHead(a.status, a.headers);
      res.end(a.body);
      ctx.metrics.countRequest('-', a.status, (performance.now() - t0) / 1000);
    },
    upgrade(req, socket) {
      const a = answer(req);
      if (a === null) {
        socket.destroy();
        ctx.metrics.countRequest('-', 0, 0);
        return;
      }
      if (socket.writable) socket.end(rawResponse(a.status, a.headers, a.body));
      else socket.destroy();
      ctx.metrics.countRequest('-', a.status, 0);
    },
  };
}
