/**
 * Headers sent upstream (docs/lifecycle.md#what-the-upstream-receives). The client's
 * headers, in order and byte for byte, minus what must not pass, then the headers
 * gatehouse generates from what it decided on:
 *
 * - `Host` is generated from the routed authority (ex.authority), never copied: an
 *   absolute-form target and a Host header that disagree cannot leave the upstream
 *   reading the one that was not routed on.
 * - Hop-by-hop headers and the names in the client's `Connection` header are removed —
 *   except names gatehouse decides on or sets (Host, body framing and type, forwarding,
 *   identity, request id): `Connection: host` cannot remove the routed Host.
 * - Every client-IP header an upstream might believe (`X-Real-IP`, `True-Client-IP`, …),
 *   method overrides (`X-HTTP-Method-Override`, …: the method is what policy decided on)
 *   and URL overrides (`X-Original-URL`, `X-Rewrite-URL`: the path is what was routed)
 *   are removed; gatehouse sets `X-Real-IP` and `X-Forwarded-For` itself.
 * - `X-Forwarded-For`/`-Proto`/`-Host` and `Forwarded` are replaced, or extended only
 *   from a trusted proxy. The request id replaces any client value.
 * - Header names with `_` are dropped (`header_underscores: drop`), because CGI/WSGI read
 *   `X_Gatehouse_Subject` as `X-Gatehouse-Subject`; with `allow` such a name passes unless
 *   its `-` spelling is one gatehouse controls.
 */
import type { Exchange } from '../../pipeline/exchange.js';
import { HOP_BY_HOP } from '../headers/index.js';
import type { CompiledReading } from '../request/index.js';
import type { IdentityForwarding } from '../token/forward.js';

/** Replaced by what gatehouse resolved; a trusted proxy's values are extended instead. */
const FORWARDING = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);

/** Never passed on, whoever sent them. */
export const ALWAYS_REMOVED: ReadonlySet<string> = new Set([
  'host',
  // Answered by the gateway (100-continue) before forwarding.
  'expect',
  // h2c upgrade material (the Upgrade itself is hop-by-hop).
  'http2-settings',
  // Client address claims: the client IP is what gatehouse resolved.
  'x-real-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'fastly-client-ip',
  'x-original-forwarded-for',
  'forwarded-for',
  'x-forwarded',
  'x-forwarded-port',
  'x-forwarded-server',
  'x-forwarded-prefix',
  'x-forwarded-ssl',
  'x-forwarded-scheme',
  'x-url-scheme',
  // Overrides of what was routed and decided on.
  'x-original-url',
  'x-rewrite-url',
  'x-original-host',
  'x-host',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);

/** Names a `Connection` header can never remove (they are decided on or set by gatehouse). */
const PROTECTED = new Set(['host', 'content-length', 'content-type', 'content-encoding', 'x-real-ip', ...FORWARDING]);

export interface UpstreamHeaderOptions {
  readonly requestIdHeaderLower: string;
  readonly identity: IdentityForwarding | null;
  readonly headerUnderscores: CompiledReading['headerUnderscores'];
}

export function upstreamRequestHeaders(ex: Exchange, opts: UpstreamHeaderOptions): string[] {
  const req = ex.req;
  const raw = req.rawHeaders;
  const rid = opts.requestIdHeaderLower;
  const fwd = opts.identity;
  // Host first, as clients send it.
  const out: string[] = ['host', ex.authority];
  let connTokens: Set<string> | null = null;
  const conn = req.headers.connection;
  if (conn !== undefined) {
    for (const t of conn.toLowerCase().split(',')) {
      const token = t.trim();
      if (token === '' || token === 'close' || token === 'keep-alive' || token === 'upgrade') continue;
      if (PROTECTED.has(token) || token === rid) continue;
      (connTokens ??= new Set()).add(token);
    }
  }
  let xff: string | undefined;
  let xfp: string | undefined;
  let xfh: string | undefined;
  let forwarded: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    let lower = name.toLowerCase();
    if (lower.indexOf('_') >= 0) {
      if (opts.headerUnderscores !== 'allow') continue;
      // Judged by the name a CGI/WSGI upstream will read.
      lower = lower.replaceAll('_', '-');
      if (FORWARDING.has(lower) || PROTECTED.has(lower) || lower === rid) continue;
    }
    // Hop-by-hop headers end here; for WebSocket upgrades undici writes Connection/Upgrade itself.
    if (HOP_BY_HOP.has(lower) || ALWAYS_REMOVED.has(lower)) continue;
    if (FORWARDING.has(lower)) {
      if (ex.peerTrusted) {
        if (lower === 'x-forwarded-for') xff = xff === undefined ? value : `${xff}, ${value}`;
        else if (lower === 'x-forwarded-proto') xfp ??= value;
        else if (lower === 'x-forwarded-host') xfh ??= value;
        else forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
      }
      continue;
    }
    if (lower === rid) continue;
    if (connTokens !== null && connTokens.has(lower)) continue;
    // Identity headers and (on auth sites) the caller's token never pass (stages/token/forward.ts).
    if (fwd !== null && fwd.strip.has(lower)) continue;
    out.push(name, value);
  }
  if (fwd !== null) fwd.append(ex, out);
  out.push('x-forwarded-for', xff === undefined ? ex.peerIp : `${xff}, ${ex.peerIp}`);
  out.push('x-forwarded-proto', xfp ?? ex.scheme);
  out.push('x-forwarded-host', xfh ?? ex.authority);
  if (forwarded !== undefined) out.push('forwarded', forwarded);
  out.push('x-real-ip', ex.clientIp);
  out.push(rid, ex.id);
  return out;
}
