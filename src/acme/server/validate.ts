/** Cross-field checks of `acme_server` (docs/configuration.md#acme_server), each with its path. */
import { resolve } from 'node:path';
import type { PartialConfig } from '../../config/load.js';
import { checkSecretFile } from '../../config/secrets.js';
import { normalizeIp, parseCidr } from '../../net/ip.js';
import { parseListenAddress } from '../../server/address.js';

const HOST = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

export function validateAcmeServer(config: PartialConfig, dir: string, err: (path: string, message: string) => void): void {
  const a = config.acme_server;
  if (!a) return;
  const p = 'acme_server';
  if (!config.ca) err(p, 'the ACME server issues from the internal CA: add a `ca` block (gatehouse ca init)');
  const addr = parseListenAddress(a.listen);
  if (!addr) err(`${p}.listen`, `not a listen address (host:port): ${JSON.stringify(a.listen)}`);
  else {
    const clash = [...config.listen.map((l) => l.address), ...(config.admin.enabled ? [config.admin.listen] : [])].some((x) => x === a.listen && addr.port !== 0);
    if (clash) err(`${p}.listen`, 'the ACME listener needs an address of its own');
    if (addr.host === '' && !a.names) err(`${p}.names`, 'a listener on every interface needs the names its certificate covers');
  }
  (a.names ?? []).forEach((n, i) => {
    if (normalizeIp(n) === null && !HOST.test(n)) err(`${p}.names[${i}]`, 'not a DNS name or IP address');
  });
  if (a.external_url !== undefined) {
    let u: URL | null = null;
    try {
      u = new URL(a.external_url);
    } catch {
      err(`${p}.external_url`, 'not a URL');
    }
    if (u && (u.protocol !== 'https:' || u.pathname !== '/' || u.search !== '' || u.username !== '')) err(`${p}.external_url`, 'must be https://host[:port] (ACME is HTTPS only)');
  }
  if (a.crl_url !== undefined && !/^https?:\/\/[^\s]+$/.test(a.crl_url)) err(`${p}.crl_url`, 'must be an http:// or https:// URL');
  if (a.lifetime > a.max_lifetime) err(`${p}.lifetime`, 'lifetime must not exceed max_lifetime');
  if (a.store === 'postgres') {
    if (!config.state.postgres) err(`${p}.store`, 'store: postgres needs state.postgres');
    if (!config.state.redis) err(`${p}.store`, 'store: postgres keeps nonces in Redis: it needs state.redis');
  }
  (a.accounts.allow_ips ?? []).forEach((c, i) => {
    if (!parseCidr(c)) err(`${p}.accounts.allow_ips[${i}]`, `not a CIDR or IP: ${JSON.stringify(c)}`);
  });
  if (a.accounts.allow_ips && a.accounts.allow_ips.length === 0) err(`${p}.accounts.allow_ips`, 'an empty list allows nobody; omit it to allow every address');
  const kids = new Set<string>();
  a.accounts.eab_keys.forEach((k, i) => {
    if (kids.has(k.kid)) err(`${p}.accounts.eab_keys[${i}].kid`, `duplicate key id ${k.kid}`);
    kids.add(k.kid);
    const problem = checkSecretFile(resolve(dir, k.file));
    if (problem) err(`${p}.accounts.eab_keys[${i}].file`, problem);
  });
  a.identifiers.ip_ranges.forEach((c, i) => {
    if (!parseCidr(c)) err(`${p}.identifiers.ip_ranges[${i}]`, `not a CIDR or IP: ${JSON.stringify(c)}`);
  });
  a.identifiers.dns_names.forEach((n, i) => {
    if (!HOST.test(n)) err(`${p}.identifiers.dns_names[${i}]`, n.startsWith('*.') ? 'wildcards are not issued (they need dns-01)' : 'not a DNS name');
  });
  a.identifiers.dns_suffixes.forEach((n, i) => {
    if (!HOST.test(n.replace(/^\./, ''))) err(`${p}.identifiers.dns_suffixes[${i}]`, 'not a DNS suffix (e.g. .svc.internal)');
  });
  if (a.identifiers.dns_names.length + a.identifiers.dns_suffixes.length + a.identifiers.ip_ranges.length === 0) {
    err(`${p}.identifiers`, 'no identifier is allowed: list dns_suffixes, dns_names or ip_ranges');
  }
  for (const [name, ip] of Object.entries(a.challenges.resolve)) {
    if (normalizeIp(ip) === null) err(`${p}.challenges.resolve.${name}`, `not an IP address: ${JSON.stringify(ip)}`);
  }
  if (new Set(a.challenges.types).size !== a.challenges.types.length) err(`${p}.challenges.types`, 'a challenge type is listed twice');
}
