/**
 * The names an ACME certificate for a site covers: its DNS host names, canonical and
 * deduplicated. IP hosts are left out (public CAs do not validate them) and wildcards are
 * refused at validation (they need dns-01). And whether the config uses ACME at all, which
 * the TLS manager asks before it imports the client (acme-client, @peculiar/x509).
 */
import { isIP } from 'node:net';
import type { AcmeClientConfig, Config } from '../../config/schema.js';
import { canonicalSiteHost } from '../../http/host.js';

export function acmeHostnames(hosts: readonly string[]): string[] {
  const out: string[] = [];
  for (const h of hosts) {
    const host = canonicalSiteHost(h);
    if (host.startsWith('*.') || host.startsWith('[') || isIP(host) !== 0) continue;
    if (!out.includes(host)) out.push(host);
  }
  return out;
}

/** The ACME block in force: validation makes every listener's identical. */
export function acmeConfigOf(config: Config): AcmeClientConfig | null {
  for (const l of config.listen) if (l.tls?.acme) return l.tls.acme;
  return null;
}
