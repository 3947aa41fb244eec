/**
 * Cross-field validation after the schema: things a schema cannot say (unique ids, CIDR
 * syntax, path patterns, addresses, routing collisions) and warnings for settings that
 * are legal but dangerous (trusting every proxy, a public admin listener).
 */
import { resolve } from 'node:path';
import { parseCidr } from '../net/ip.js';
import { canonicalSiteHost } from '../http/host.js';
import { canonicalPath, normalizePath, validatePathPattern } from '../http/path.js';
import { basePathOf, defaultMemberId } from '../stages/proxy/members.js';
import { isLoopbackHost, parseListenAddress } from '../server/address.js';
import type { IpFilterConfig, SiteConfig } from './schema.js';
import type { PartialConfig, Problem } from './load.js';
import { checkSecretFile, readSecretFile } from './secrets.js';
import { validateTls } from './validate-tls.js';
import { validateAudit } from '../audit/config-check.js';
import { validateIdentityConfig } from '../identity/validate.js';
import { validatePolicyConfig } from '../stages/policy/validate.js';
import { validateLlmConfig } from '../stages/llm/validate.js';
import { secretReaderFor, validateProcess } from './validate-process.js';
import { validateStores } from './validate-stores.js';
import { validateAcmeServer } from '../acme/server/validate.js';
import { withSecretReader } from './secrets.js';

/** 256 bits, as `openssl rand -hex 32` (64 bytes) or `-base64 32` (44) give: a short admin token can be guessed online. */
export const MIN_ADMIN_TOKEN_BYTES = 32;

/** Lowercase, no trailing dot; a bare IPv6 literal is bracketed as it appears in a Host header. */
export function normalizeHost(h: string): string {
  return canonicalSiteHost(h);
}

const HOST_PATTERN = /^\*$|^(\*\.)?([a-z0-9-]+\.)*[a-z0-9-]+$|^\[[0-9a-f:.]+\]$|^[0-9a-f:]+$/;

export function validateConfig(config: PartialConfig, dir: string, file?: string): Problem[] {
  // Secret files are checked for the user gatehouse will run as (process.user), not for
  // whoever runs the check (root, before `run` drops privileges).
  return withSecretReader(secretReaderFor(config), () => validateAll(config, dir, file));
}

function validateAll(config: PartialConfig, dir: string, file: string | undefined): Problem[] {
  const out: Problem[] = [];
  const err = (path: string, message: string) => out.push({ path, message, severity: 'error' });
  const warn = (path: string, message: string) => out.push({ path, message, severity: 'warning' });

  const cidrList = (path: string, list: readonly string[] | undefined) => {
    (list ?? []).forEach((c, i) => {
      const parsed = parseCidr(c);
      if (!parsed) err(`${path}[${i}]`, `not an IP address or CIDR: ${JSON.stringify(c)}`);
    });
  };
  const ipFilter = (path: string, f: IpFilterConfig | undefined) => {
    if (!f) return;
    cidrList(`${path}.allow`, f.allow);
    cidrList(`${path}.deny`, f.deny);
    if (f.allow && f.allow.length === 0) warn(`${path}.allow`, 'an empty allow list denies every client');
  };

  const listens = new Set<string>();
  config.listen.forEach((l, i) => {
    const a = parseListenAddress(l.address);
    if (!a) err(`listen[${i}].address`, `not a listen address: ${JSON.stringify(l.address)} (use host:port, [v6]:port or :port)`);
    else if (a.port !== 0 && listens.has(`${a.host}:${a.port}`)) err(`listen[${i}].address`, 'duplicate listen address');
    else listens.add(`${a?.host}:${a?.port}`);
  });
  if (config.admin.enabled) {
    const a = parseListenAddress(config.admin.listen);
    if (!a) err('admin.listen', `not a listen address: ${JSON.stringify(config.admin.listen)}`);
    else {
      if (a.port !== 0 && listens.has(`${a.host}:${a.port}`)) err('admin.listen', 'the admin listener may not share an address with a public listener');
      if (!isLoopbackHost(a.host)) warn('admin.listen', `the admin listener is bound to ${a.host === '' ? 'every interface' : a.host}, not loopback: /metrics and the admin API are reachable from the network`);
    }
  }

  if (config.http.header_timeout > config.http.request_timeout) {
    err('http.header_timeout', 'must not be longer than http.request_timeout (the whole request, headers included, must arrive within request_timeout)');
  }
  if (config.admin.token_file) {
    const problem = checkSecretFile(resolve(dir, config.admin.token_file));
    if (problem) err('admin.token_file', problem);
    else if (Buffer.byteLength(readSecretFile(resolve(dir, config.admin.token_file))) < MIN_ADMIN_TOKEN_BYTES) {
      // Never the token nor its length: the message names the path and the rule only.
      err('admin.token_file', `the admin token must be at least ${MIN_ADMIN_TOKEN_BYTES} bytes (a trailing newline does not count); make one with: openssl rand -hex 32`);
    }
  }
  cidrList('trusted_proxies', config.trusted_proxies);
  config.trusted_proxies.forEach((c, i) => {
    const p = parseCidr(c);
    if (p && p.prefix === 0) {
      warn(`trusted_proxies[${i}]`, `${c} trusts EVERY peer: any client can choose its own IP address via X-Forwarded-For, defeating IP filters and rate limits`);
    } else if (p && p.coversIpv4) {
      warn(`trusted_proxies[${i}]`, `${c} contains the IPv4-mapped range ::ffff:0:0/96 and so trusts EVERY IPv4 peer: any IPv4 client can choose its own address via X-Forwarded-For`);
    }
  });
  ipFilter('ip_filter', config.ip_filter);

  if (config.state.store === 'redis' && !config.state.redis) {
    err('state.redis', 'state.store is redis but no state.redis block is given');
  }
  if (config.state.redis?.password_file) {
    const problem = checkSecretFile(resolve(dir, config.state.redis.password_file));
    if (problem) err('state.redis.password_file', problem);
  }
  if (config.state.postgres?.password_file) {
    const problem = checkSecretFile(resolve(dir, config.state.postgres.password_file));
    if (problem) err('state.postgres.password_file', problem);
  }
  if (config.state.postgres) {
    try {
      const u = new URL(config.state.postgres.url);
      if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') err('state.postgres.url', 'must be a postgres:// URL');
    } catch {
      err('state.postgres.url', 'not a URL');
    }
  }
  if (config.state.redis) {
    try {
      const u = new URL(config.state.redis.url);
      if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') err('state.redis.url', 'must be a redis:// or rediss:// URL');
    } catch {
      err('state.redis.url', 'not a URL');
    }
  }

  const siteIds = new Set<string>();
  const routes = new Map<string, string>();
  /** The site that serves hosts no other site serves (`hosts: ["*"]`). */
  let catchAll: string | null = null;
  config.sites.forEach((site, si) => {
    // A site that failed its schema was reported already.
    if (site === undefined) return;
    const sp = `sites[${si}]`;
    // Fields may be missing here when the site failed its schema (reported already).
    if (site.id !== undefined) {
      if (siteIds.has(site.id)) err(`${sp}.id`, `duplicate site id ${JSON.stringify(site.id)}`);
      siteIds.add(site.id);
    }
    const pathPrefix = site.path_prefix ?? '/';
    if (!pathPrefix.startsWith('/')) err(`${sp}.path_prefix`, 'must start with /');
    const prefix = normalizePath(pathPrefix);
    if (prefix === null) err(`${sp}.path_prefix`, 'not a valid path');
    (site.hosts ?? []).forEach((h, hi) => {
      const host = normalizeHost(h);
      if (!HOST_PATTERN.test(host)) err(`${sp}.hosts[${hi}]`, `not a host name: ${JSON.stringify(h)} (no port, no scheme; *.example.com allowed)`);
      const key = `${host} ${prefix}`;
      const other = routes.get(key);
      if (other !== undefined) err(`${sp}.hosts[${hi}]`, `host ${host} with path_prefix ${pathPrefix} is already served by ${other}`);
      else routes.set(key, `sites[${si}]`);
    });

    validateUpstream(site, sp, err);
    validateRouting(site, sp, prefix, err);
    if (site.hosts?.includes('*')) {
      if (catchAll !== null) err(`${sp}.hosts`, `only one site may serve every host ("*"); ${catchAll} does already`);
      else catchAll = sp;
    }

    ipFilter(`${sp}.ip_filter`, site.ip_filter);

    const ruleIds = new Set<string>();
    (site.rate_limits ?? []).forEach((r, ri) => {
      if (r === undefined) return;
      const rp = `${sp}.rate_limits[${ri}]`;
      if (ruleIds.has(r.id)) err(`${rp}.id`, `duplicate rule id ${JSON.stringify(r.id)} in this site`);
      ruleIds.add(r.id);
      (r.paths ?? []).forEach((p, pi) => {
        const problem = validatePathPattern(p);
        if (problem) err(`${rp}.paths[${pi}]`, problem);
      });
      if (r.paths && r.paths.length === 0) err(`${rp}.paths`, 'an empty path list matches nothing; omit `paths` to apply the rule to every path');
    });
  });
  validateKeptPaths(config, err);
  validateTls(config, dir, err, warn);
  validateAudit(config, dir, err);
  validateIdentityConfig(config, dir, err);
  validatePolicyConfig(config, dir, err);
  validateLlmConfig(config, dir, err);
  validateStores(config, dir, err, warn);
  validateAcmeServer(config, dir, err);
  validateProcess(config, dir, file, err, warn);
  // An unreadable secret is an error already; its "not readable by process.user" warning adds nothing.
  const errored = new Set(out.filter((p) => p.severity === 'error').map((p) => p.path));
  return out.filter((p) => p.severity === 'error' || !errored.has(p.path));
}

type Err = (path: string, message: string) => void;

/** Pool members: URLs (origin and an optional canonical base path), unique ids, and the settings that go with the balancing mode. */
function validateUpstream(site: SiteConfig, sp: string, err: Err): void {
  const u = site.upstream;
  if (u === undefined && site.redirect === undefined) err(sp, 'a site needs an `upstream` (where requests go) or a `redirect`');
  if (u !== undefined && site.redirect !== undefined) err(`${sp}.redirect`, 'a site has either an `upstream` or a `redirect`, not both');
  if (u === undefined) return;
  const ids = new Map<string, number>();
  (u.urls ?? []).forEach((entry, ui) => {
    const long = typeof entry !== 'string';
    const raw = long ? entry.url : entry;
    const path = `${sp}.upstream.urls[${ui}]${long ? '.url' : ''}`;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      err(path, `not a URL: ${JSON.stringify(raw)}`);
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') err(path, 'upstream URLs must be http:// or https://');
    if (url.username || url.password) err(path, 'upstream URLs may not carry credentials');
    if (url.search || url.hash || raw.includes('?') || raw.includes('#')) err(path, 'an upstream URL is scheme://host:port with an optional base path, without query or fragment');
    const base = basePathOf(url);
    const canon = canonicalPath(base === '' ? '/' : base);
    if (base !== '' && (canon.path !== base || canon.flags !== 0)) err(path, `the base path must be canonical (no dot segments, //, \\, ; or escapes of / \\ .): ${JSON.stringify(url.pathname)}`);
    const id = (long ? entry.id : undefined) ?? defaultMemberId(url);
    const other = ids.get(id);
    if (other !== undefined) err(`${sp}.upstream.urls[${ui}]`, `member id ${JSON.stringify(id)} is already used by urls[${other}]; give each member its own \`id\``);
    else ids.set(id, ui);
  });
  if (u.hash_on !== undefined && u.hash_on !== 'client_ip' && u.balance !== 'hash') err(`${sp}.upstream.hash_on`, 'hash_on applies to balance: hash only');
  const h = u.health?.passive;
  if (h !== undefined && h.backoff > h.max_backoff) err(`${sp}.upstream.health.passive.backoff`, 'must not be longer than max_backoff');
  const a = u.health?.active;
  if (a !== undefined && a.timeout >= a.interval) err(`${sp}.upstream.health.active.timeout`, 'must be shorter than interval (a check must end before the next one starts)');
}

/** strip_prefix (a leading part of path_prefix) and the redirect target. */
function validateRouting(site: SiteConfig, sp: string, prefix: string | null, err: Err): void {
  if (site.strip_prefix !== undefined) {
    const strip = site.strip_prefix;
    const norm = strip.startsWith('/') ? normalizePath(strip) : null;
    const trimmed = norm === null ? null : norm.endsWith('/') ? norm.slice(0, -1) : norm;
    const pfx = prefix === null ? null : prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    if (trimmed === null || canonicalPath(strip).path !== strip) err(`${sp}.strip_prefix`, 'must be a canonical path starting with / (e.g. /api)');
    else if (trimmed === '') err(`${sp}.strip_prefix`, 'stripping / strips nothing; omit strip_prefix');
    else if (pfx !== null && pfx !== trimmed && !pfx.startsWith(trimmed + '/')) {
      err(`${sp}.strip_prefix`, `must be path_prefix (${JSON.stringify(site.path_prefix ?? '/')}) or a leading part of it, so that every request the site serves has it`);
    }
  }
  const r = site.redirect;
  if (r !== undefined) {
    const literal = r.to.replace(/\{(path|query|uri)\}/g, '');
    if (/[{}]/.test(literal)) err(`${sp}.redirect.to`, 'the only placeholders are {path}, {query} and {uri}');
    if (!/^[\x21-\x7e]+$/.test(r.to)) err(`${sp}.redirect.to`, 'visible ASCII only (percent-encode anything else)');
    else if (!r.to.startsWith('/') || r.to.startsWith('//')) {
      let ok = false;
      try {
        const url = new URL(r.to.replace(/\{(path|query|uri)\}/g, ''));
        ok = url.protocol === 'http:' || url.protocol === 'https:';
      } catch {
        ok = false;
      }
      if (!ok) err(`${sp}.redirect.to`, 'an absolute http(s) URL or a path starting with a single /');
    }
  }
}

/**
 * `escaped_path: keep` forwards `%2F`, `%5C`, `%2E` as received, so an upstream may read the
 * path differently from gatehouse's matching form. Only a site on which no path-based
 * decision is made may do that: its path_prefix is `/`, it has no path classes (rate
 * limits, auth), no policy (which sees the path), and no other site shares a host with it
 * (routing between them would be a path-based decision).
 */
function validateKeptPaths(config: PartialConfig, err: (path: string, message: string) => void): void {
  const globalKeep = config.http?.request?.escaped_path === 'keep';
  const hostOwners = new Map<string, number>();
  config.sites.forEach((site) => {
    if (site === undefined) return;
    for (const h of site.hosts ?? []) {
      const host = normalizeHost(h);
      hostOwners.set(host, (hostOwners.get(host) ?? 0) + 1);
    }
  });
  config.sites.forEach((site, si) => {
    if (site === undefined) return;
    const mode = site.request?.escaped_path ?? (globalKeep ? 'keep' : undefined);
    if (mode !== 'keep') return;
    const where = site.request?.escaped_path === 'keep' ? `sites[${si}].request.escaped_path` : 'http.request.escaped_path';
    const reasons: string[] = [];
    if (normalizePath(site.path_prefix ?? '/') !== '/') reasons.push(`sites[${si}] has path_prefix ${JSON.stringify(site.path_prefix)}`);
    if ((site.rate_limits ?? []).some((r) => r?.paths !== undefined)) reasons.push(`sites[${si}] has rate-limit rules with paths`);
    if (site.auth?.paths !== undefined) reasons.push(`sites[${si}] has auth.paths`);
    if (site.policy !== undefined) reasons.push(`sites[${si}] has a policy (it sees the path)`);
    if (site.strip_prefix !== undefined) reasons.push(`sites[${si}] has strip_prefix`);
    if (site.llm !== undefined) reasons.push(`sites[${si}] is an LLM site (its endpoints are paths)`);
    for (const h of site.hosts ?? []) if ((hostOwners.get(normalizeHost(h)) ?? 0) > 1) reasons.push(`host ${normalizeHost(h)} is shared with another site`);
    if (reasons.length > 0) err(where, `escaped_path: keep forwards encoded separators that an upstream may read differently, so it is only for a site with no path-based control: ${reasons.join('; ')}`);
  });
}
