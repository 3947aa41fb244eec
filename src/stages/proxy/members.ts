/**
 * The members of an upstream pool as the rest of the proxy sees them: one entry per URL of
 * `upstream.urls` (a string or `{ url, id, weight }`), with its id (the metric label, log
 * field and health-state key), origin and base path. Read from config once, at compile time.
 */
import type { UpstreamConfig } from '../../config/schema.js';

export interface MemberSpec {
  readonly id: string;
  /** The URL as configured. */
  readonly url: string;
  /** `scheme://host:port`: what undici connects to. */
  readonly origin: string;
  /** Prefixed to every forwarded path: '' or `/a/b` (no trailing slash). */
  readonly basePath: string;
  readonly weight: number;
}

/** `http://127.0.0.1:3000` → `127-0-0-1-3000`: the host and port in the id alphabet. */
export function defaultMemberId(url: URL): string {
  const port = url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80';
  const host = url.hostname.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  return `${host === '' ? 'upstream' : host}-${port}`.slice(0, 63);
}

/** The base path of a member URL: '' for none, else the path without its trailing slash. */
export function basePathOf(url: URL): string {
  const p = url.pathname;
  if (p === '' || p === '/') return '';
  return p.endsWith('/') ? p.slice(0, -1) : p;
}

/** Member specs of a validated upstream block (validate.ts has refused bad URLs and duplicate ids). */
export function memberSpecs(u: UpstreamConfig): MemberSpec[] {
  return u.urls.map((entry) => {
    const m = typeof entry === 'string' ? { url: entry, id: undefined, weight: 1 } : entry;
    const url = new URL(m.url);
    return { id: m.id ?? defaultMemberId(url), url: m.url, origin: url.origin, basePath: basePathOf(url), weight: m.weight };
  });
}

/** The configured URL strings, whatever form each entry has. */
export function memberUrls(u: Pick<UpstreamConfig, 'urls'>): string[] {
  return u.urls.map((entry) => (typeof entry === 'string' ? entry : entry.url));
}
