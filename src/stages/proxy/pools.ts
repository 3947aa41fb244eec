/**
 * Upstream connection pools (undici), shared across config reloads: a reload that keeps
 * a site's upstream settings keeps its warm keep-alive connections. Pools no longer used
 * by the current config are closed gracefully (in-flight requests finish first).
 */
import type { ConnectionOptions } from 'node:tls';
import { BalancedPool, buildConnector, Pool, type Dispatcher } from 'undici';
import type { SiteConfig } from '../../config/schema.js';

type UpstreamConfig = SiteConfig['upstream'];

/** TLS options for new upstream connections; `stamp` changes whenever they do. */
export interface UpstreamTlsMaterial {
  readonly stamp: string;
  readonly options: ConnectionOptions;
}

export interface UpstreamTlsProvider {
  upstreamTls(u: UpstreamConfig): UpstreamTlsMaterial;
}

/**
 * The connector for https:// upstreams. It asks the provider for the trust pool and the
 * client certificate at every new connection, so a renewed client certificate or a
 * replaced CA bundle reaches the next connection without recreating the pool (open
 * connections finish with what they have). Verification is always on. The name checked
 * against the certificate is the configured server_name or the URL's host — never the
 * client's Host header, which undici would otherwise use as SNI and identity.
 */
function tlsConnector(u: UpstreamConfig, provider: UpstreamTlsProvider | null): buildConnector.connector {
  let stamp: string | null = null;
  let connector: buildConnector.connector | null = null;
  return function connectUpstream(opts, cb) {
    let m: UpstreamTlsMaterial;
    try {
      m = provider ? provider.upstreamTls(u) : { stamp: '', options: {} };
    } catch (err) {
      cb(Object.assign(err as Error, { code: (err as { code?: string }).code ?? 'ERR_TLS_MATERIAL_UNAVAILABLE' }), null);
      return;
    }
    if (connector === null || m.stamp !== stamp) {
      // allowH2 makes the connector offer ALPN h2 (then http/1.1) to an upstream with `http2`.
      connector = buildConnector({ ...(m.options as buildConnector.BuildOptions), timeout: u.connect_timeout, rejectUnauthorized: true, allowH2: u.http2 });
      stamp = m.stamp;
    }
    connector({ ...opts, servername: (m.options.servername as string | undefined) ?? undefined }, (...result) => {
      const socket = result[1];
      // A TLS 1.3 peer refuses a client certificate with an alert after the handshake; undici
      // would report the 'end' that follows as "other side closed". Ending the socket at the
      // alert keeps the TLS error as the cause (→ upstream_tls_error, not upstream_unavailable).
      if (socket) {
        socket.prependListener('error', (e: NodeJS.ErrnoException) => {
          if (e.code?.startsWith('ERR_SSL_')) socket.destroy();
        });
      }
      cb(...result);
    });
  };
}

/**
 * undici derives each request's SNI name from its Host header and reconnects whenever it
 * differs from the connection's: a site with several host names would handshake anew on
 * every switch. The connector above decides the name anyway, so every request of an
 * https:// upstream carries one fixed token and keeps its pooled TLS connection.
 */
function fixedServername(d: Dispatcher, u: UpstreamConfig): Dispatcher {
  const servername = u.tls?.server_name ?? 'gatehouse-upstream';
  // `servername` is a request option of undici's Request that its DispatchOptions type omits.
  const dispatch: Dispatcher['dispatch'] = (opts, handler) => d.dispatch({ ...opts, servername } as Dispatcher.DispatchOptions, handler);
  return new Proxy(d, {
    get(target, key) {
      if (key === 'dispatch') return dispatch;
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

function poolOptions(u: UpstreamConfig, tls: UpstreamTlsProvider | null): Pool.Options {
  return {
    connections: u.max_connections,
    // Pool builds its connector from this object (it does not pass useH2c on by itself).
    connect: u.urls.some((url) => url.startsWith('https:')) ? tlsConnector(u, tls) : { timeout: u.connect_timeout, ...(u.http2 ? { useH2c: true } : {}) },
    headersTimeout: u.response_timeout,
    bodyTimeout: u.idle_timeout,
    keepAliveTimeout: u.keep_alive_timeout,
    // One request at a time per connection: pipelining to arbitrary upstreams is unsafe.
    pipelining: 1,
    // `upstream.http2`: HTTP/2 to the upstream (gRPC): ALPN h2 over TLS, prior knowledge (h2c) over http://.
    ...(u.http2 ? { allowH2: true } : {}),
  };
}

export class PoolCache {
  private readonly pools = new Map<string, Dispatcher>();
  private tls: UpstreamTlsProvider | null = null;

  /** Where https:// upstream pools get their trust pool and client certificate (set before the first get). */
  setTls(provider: UpstreamTlsProvider): void {
    this.tls = provider;
  }

  get(u: UpstreamConfig): Dispatcher {
    const key = JSON.stringify(u);
    let d = this.pools.get(key);
    if (d === undefined) {
      const opts = poolOptions(u, this.tls);
      d = u.urls.length === 1 ? new Pool(u.urls[0] as string, opts) : new BalancedPool(u.urls, opts);
      if (u.urls.some((url) => url.startsWith('https:'))) d = fixedServername(d, u);
      this.pools.set(key, d);
    }
    return d;
  }

  /** Closes pools whose upstream config is not in `keep`. */
  async retain(keep: readonly UpstreamConfig[]): Promise<void> {
    const live = new Set(keep.map((u) => JSON.stringify(u)));
    const closing: Promise<void>[] = [];
    for (const [key, d] of this.pools) {
      if (!live.has(key)) {
        this.pools.delete(key);
        closing.push(d.close().catch(() => undefined));
      }
    }
    await Promise.all(closing);
  }

  async closeAll(force = false): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((d) => (force ? d.destroy() : d.close()).catch(() => undefined)));
  }
}
