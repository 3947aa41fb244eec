/**
 * A site compiled once from config (and again on reload): its stage list, header policy
 * and proxy. The router maps (host, normalized path) to a site: exact hosts first, then
 * `*.suffix` wildcards, then the catch-all site (`hosts: ["*"]`) for any other host; within
 * a host the longest path prefix wins.
 */
import type { SiteConfig } from '../config/schema.js';
import type { HeaderPolicy } from '../stages/headers/index.js';
import type { CompiledReading } from '../stages/request/index.js';
import type { Exchange } from './exchange.js';
import type { Stage } from './stage.js';

export interface SiteProxy {
  /** Forwards the exchange and writes the response (the only writer besides refusals). */
  handle(ex: Exchange): void;
  /** Forwards a WebSocket upgrade; `head` is the first bytes already read from the client. */
  upgrade(ex: Exchange, head: Buffer): void;
}

export interface CompiledSite {
  readonly id: string;
  readonly config: SiteConfig;
  readonly stages: readonly Stage[];
  readonly headers: HeaderPolicy;
  readonly proxy: SiteProxy;
  /** Normalized prefix without trailing slash ('' for the root). */
  readonly prefix: string;
  /** How this site reads ambiguous requests (`request` over `http.request`). */
  readonly reading: CompiledReading;
}

export interface Router {
  match(host: string, normPath: string): CompiledSite | null;
}

function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47; /* '/' */
}

export function createRouter(entries: ReadonlyArray<{ host: string; site: CompiledSite }>): Router {
  const exact = new Map<string, CompiledSite[]>();
  const wildcard: Array<{ suffix: string; sites: CompiledSite[] }> = [];
  const catchAll: CompiledSite[] = [];
  for (const { host, site } of entries) {
    if (host === '*') catchAll.push(site);
    else if (host.startsWith('*.')) {
      const suffix = host.slice(1); // ".example.com"
      let w = wildcard.find((x) => x.suffix === suffix);
      if (!w) wildcard.push((w = { suffix, sites: [] }));
      w.sites.push(site);
    } else {
      let list = exact.get(host);
      if (!list) exact.set(host, (list = []));
      list.push(site);
    }
  }
  const byPrefix = (a: CompiledSite, b: CompiledSite) => b.prefix.length - a.prefix.length;
  for (const list of exact.values()) list.sort(byPrefix);
  for (const w of wildcard) w.sites.sort(byPrefix);
  catchAll.sort(byPrefix);
  // Longer suffixes are more specific.
  wildcard.sort((a, b) => b.suffix.length - a.suffix.length);

  function pick(list: readonly CompiledSite[], path: string): CompiledSite | null {
    for (let i = 0; i < list.length; i++) {
      const s = list[i] as CompiledSite;
      if (prefixMatches(s.prefix, path)) return s;
    }
    return null;
  }

  return {
    match(host, path) {
      const list = exact.get(host);
      if (list !== undefined) {
        const s = pick(list, path);
        if (s !== null) return s;
      }
      for (const w of wildcard) {
        if (host.length > w.suffix.length && host.endsWith(w.suffix)) {
          const s = pick(w.sites, path);
          if (s !== null) return s;
        }
      }
      return catchAll.length === 0 ? null : pick(catchAll, path);
    },
  };
}
