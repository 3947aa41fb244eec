/**
 * A site whose action is a redirect (`redirect: { to, status }`) instead of an upstream.
 * It runs where the proxy would, after every stage of the site, so the same controls
 * apply. `to` is compiled once into literal parts and placeholders: `{path}` is the path
 * the upstream would have received (canonical, after strip_prefix), `{query}` the query
 * with its `?` (or nothing), `{uri}` both. Those come from the parsed request target,
 * which holds visible ASCII only, so they cannot break the Location header.
 */
import type { SiteConfig } from '../../config/schema.js';
import { connectionOf } from '../../pipeline/connection.js';
import type { GatewayContext } from '../../pipeline/context.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import { ownHeaders, rawResponse, refuse } from '../../pipeline/respond.js';
import type { SiteProxy } from '../../pipeline/site.js';
import type { HeaderPolicy } from '../headers/index.js';
import { strippedPath, type CompiledStrip } from './forward-path.js';

type Part = string | { readonly slot: 'path' | 'query' | 'uri' };
const STRIP_MISMATCH = new Refusal('bad_request', 'proxy', 'strip_prefix');

export function compileRedirectTarget(to: string): Part[] {
  const parts: Part[] = [];
  const re = /\{(path|query|uri)\}/g;
  let last = 0;
  for (let m = re.exec(to); m !== null; m = re.exec(to)) {
    if (m.index > last) parts.push(to.slice(last, m.index));
    parts.push({ slot: m[1] as 'path' | 'query' | 'uri' });
    last = m.index + m[0].length;
  }
  if (last < to.length) parts.push(to.slice(last));
  return parts;
}

export function createRedirect(cfg: NonNullable<SiteConfig['redirect']>, headers: HeaderPolicy, ctx: GatewayContext, strip: CompiledStrip | null): SiteProxy {
  const parts = compileRedirectTarget(cfg.to);
  const status = cfg.status;

  /** The Location value, or null when strip_prefix cannot give one reading. */
  function location(ex: Exchange): string | null {
    let path = ex.path;
    if (strip !== null) {
      const p = strippedPath(ex.path, ex.normPath, strip);
      if (p === null) return null;
      path = p;
    }
    const query = ex.query === '' ? '' : `?${ex.query}`;
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : p.slot === 'path' ? path : p.slot === 'query' ? query : path + query;
    return out;
  }

  function answer(ex: Exchange): void {
    const loc = location(ex);
    if (loc === null) return refuse(ctx, ex, headers, STRIP_MISMATCH);
    ex.status = status;
    const list = ownHeaders(headers, ex.extraHeaders, ['Location', loc], ex.clientHttps);
    const send = () => {
      const res = ex.res;
      if (res === null) {
        // An upgrade request: answer on the raw socket and close (no tunnel is made).
        ex.socket.end(rawResponse(status, list, ''));
        return;
      }
      if (res.destroyed) return;
      list.push('Content-Length', '0');
      // The body of the request (if any) is not read: close after answering.
      const req = ex.req;
      if (!req.complete && (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0')) {
        list.push('Connection', 'close');
        connectionOf(ex.socket).close();
      }
      res.writeHead(status, list);
      res.end();
    };
    if (ctx.beforeRespond !== null) {
      // Sync audit: the answer waits until its record is durable.
      ctx.beforeRespond(ex).then(send, () => refuse(ctx, ex, headers, new Refusal('audit_unavailable', 'audit')));
      return;
    }
    send();
  }

  return { handle: answer, upgrade: (ex) => answer(ex) };
}
