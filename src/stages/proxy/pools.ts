/**
 * Upstream connection pools (undici), shared across config reloads: a reload that keeps
 * a site's upstream settings keeps its warm keep-alive connections. Pools no longer used
 * by the current config are closed gracefully (in-flight requests finish first).
 */
import { BalancedPool, Pool, type Dispatcher } from 'undici';
import type { SiteConfig } from '../../config/schema.js';

type UpstreamConfig = SiteConfig['upstream'];

function poolOptions(u: UpstreamConfig): Pool.Options {
  return {
    connections: u.max_connections,
    connect: { timeout: u.connect_timeout },
    headersTimeout: u.response_timeout,
    bodyTimeout: u.idle_timeout,
    keepAliveTimeout: u.keep_alive_timeout,
    // One request at a time per connection: pipelining to arbitrary upstreams is unsafe.
    pipelining: 1,
  };
}

export class PoolCache {
  private readonly pools = new Map<string, Dispatcher>();

  get(u: UpstreamConfig): Dispatcher {
    const key = JSON.stringify(u);
    let d = this.pools.get(key);
    if (d === undefined) {
      const opts = poolOptions(u);
      d = u.urls.length === 1 ? new Pool(u.urls[0] as string, opts) : new BalancedPool(u.urls, opts);
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
