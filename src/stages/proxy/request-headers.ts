/**
 * Headers sent upstream: the client's headers minus hop-by-hop ones (and any named in
 * its Connection header), minus `Expect` (the gateway already answered it), with
 * X-Forwarded-For/-Proto/-Host set from what the gateway resolved. A client-supplied
 * X-Forwarded-* or Forwarded value is replaced, never appended to — unless the peer is a
 * trusted proxy, whose chain is extended. The request id replaces any client value.
 */
import type { Exchange } from '../../pipeline/exchange.js';
import { HOP_BY_HOP } from '../headers/index.js';
import type { IdentityForwarding } from '../token/forward.js';

const REPLACED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'expect']);

export function upstreamRequestHeaders(ex: Exchange, requestIdHeaderLower: string, fwd: IdentityForwarding | null = null): string[] {
  const req = ex.req;
  const raw = req.rawHeaders;
  const out: string[] = [];
  let connTokens: Set<string> | null = null;
  const conn = req.headers.connection;
  if (conn !== undefined) {
    for (const t of conn.toLowerCase().split(',')) {
      const token = t.trim();
      if (token !== '' && token !== 'close' && token !== 'keep-alive' && token !== 'upgrade') (connTokens ??= new Set()).add(token);
    }
  }
  let xff: string | undefined;
  let xfp: string | undefined;
  let xfh: string | undefined;
  let forwarded: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    // Hop-by-hop headers end here; for WebSocket upgrades undici writes Connection/Upgrade itself.
    if (HOP_BY_HOP.has(lower)) continue;
    if (REPLACED.has(lower)) {
      if (ex.peerTrusted) {
        if (lower === 'x-forwarded-for') xff = xff === undefined ? value : `${xff}, ${value}`;
        else if (lower === 'x-forwarded-proto') xfp ??= value;
        else if (lower === 'x-forwarded-host') xfh ??= value;
        else if (lower === 'forwarded') forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
      }
      continue;
    }
    if (lower === requestIdHeaderLower) continue;
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
  out.push(requestIdHeaderLower, ex.id);
  return out;
}
