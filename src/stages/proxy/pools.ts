/**
 * Upstream connections (undici): one Pool per member of a site's upstream pool, built by
 * `createUpstreamDispatcher` (the one place an upstream connection is configured), and the
 * members kept across config reloads: a reload that keeps a member's settings keeps its
 * warm keep-alive connections and its health state. Members no longer used by a live
 * config are closed gracefully (in-flight requests finish first).
 */
import type { ConnectionOptions } from 'node:tls';
import { buildConnector, Pool, type Dispatcher } from 'undici';
import type { SiteConfig, UpstreamConfig } from '../../config/schema.js';
import { UpstreamMember, type MemberDeps } from './member.js';
import { memberSpecs, memberUrls, type MemberSpec } from './members.js';

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
      connector = buildConnector({ ...(m.options as buildConnector.BuildOptions), timeout: u.connect_timeout, rejectUnauthorized: true });
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
    connect: memberUrls(u).some((url) => url.startsWith('https:')) ? tlsConnector(u, tls) : { timeout: u.connect_timeout },
    headersTimeout: u.response_timeout,
    bodyTimeout: u.idle_timeout,
    keepAliveTimeout: u.keep_alive_timeout,
    // One request at a time per connection: pipelining to arbitrary upstreams is unsafe.
    pipelining: 1,
  };
}

/** The undici dispatcher for one member (`origin` = scheme://host:port) with the upstream's connection settings. */
export function createUpstreamDispatcher(origin: string, u: UpstreamConfig, tls: UpstreamTlsProvider | null): Dispatcher {
  const d = new Pool(origin, poolOptions(u, tls));
  return origin.startsWith('https:') ? fixedServername(d, u) : d;
}

/** What a member's state depends on: the site, its id and URL, and every connection and health setting. */
function memberKey(site: string, spec: MemberSpec, u: UpstreamConfig): string {
  const { urls: _urls, balance: _b, hash_on: _h, retry: _r, ...conn } = u;
  return JSON.stringify([site, spec.id, spec.url, conn]);
}

export class PoolCache {
  private readonly members = new Map<string, UpstreamMember>();
  private tls: UpstreamTlsProvider | null = null;

  /** Where https:// upstream pools get their trust pool and client certificate (set before the first get). */
  setTls(provider: UpstreamTlsProvider): void {
    this.tls = provider;
  }

  /** The members of a site's upstream, created (connections, health checks) on first use. */
  membersOf(site: string, u: UpstreamConfig, deps: MemberDeps): Array<{ member: UpstreamMember; weight: number }> {
    return memberSpecs(u).map((spec) => {
      const key = memberKey(site, spec, u);
      let m = this.members.get(key);
      if (m === undefined) {
        m = new UpstreamMember(site, spec, u, createUpstreamDispatcher(spec.origin, u, this.tls), deps);
        this.members.set(key, m);
      }
      return { member: m, weight: spec.weight };
    });
  }

  /** Closes members that no site in `keep` uses any more. */
  async retain(keep: readonly SiteConfig[]): Promise<void> {
    const live = new Set<string>();
    for (const s of keep) if (s.upstream !== undefined) for (const spec of memberSpecs(s.upstream)) live.add(memberKey(s.id, spec, s.upstream));
    const closing: Promise<void>[] = [];
    for (const [key, m] of this.members) {
      if (!live.has(key)) {
        this.members.delete(key);
        m.close();
        closing.push(m.dispatcher.close().catch(() => undefined));
      }
    }
    await Promise.all(closing);
  }

  async closeAll(force = false): Promise<void> {
    const all = [...this.members.values()];
    this.members.clear();
    for (const m of all) m.close();
    await Promise.all(all.map((m) => (force ? m.dispatcher.destroy() : m.dispatcher.close()).catch(() => undefined)));
  }
}
