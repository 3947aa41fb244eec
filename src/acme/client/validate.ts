/**
 * Cross-field checks for `listen[].tls.acme` (docs/acme-client.md). Called from
 * config/validate-tls.ts; every problem carries its path. The EAB key and the CA bundle
 * are read here once, so a bad file stops the start rather than the first order.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { PartialConfig } from '../../config/load.js';
import type { AcmeClientConfig } from '../../config/schema.js';
import { checkSecretFile, readSecretFile } from '../../config/secrets.js';
import { canonicalSiteHost } from '../../http/host.js';
import { trustPool } from '../../pki/trust-pool.js';
import { parseListenAddress } from '../../server/address.js';
import { acmeHostnames } from './identifiers.js';

type Report = (path: string, message: string) => void;

/** An EAB HMAC key as CAs hand it out: base64url (RFC 4648 §5), at least 128 bits. */
export function decodeEabKey(text: string): Buffer | null {
  const t = text.trim();
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(t)) return null;
  const key = Buffer.from(t.replace(/=+$/, ''), 'base64url');
  return key.length >= 16 ? key : null;
}

export function validateAcmeClient(config: PartialConfig, dir: string, err: Report, warn: Report): void {
  let first: { path: string; json: string } | null = null;
  let challenge: AcmeClientConfig['challenge'] | null = null;
  config.listen.forEach((l, i) => {
    const a = l.tls?.acme;
    if (!a) return;
    const p = `listen[${i}].tls.acme`;
    const json = JSON.stringify(a);
    // One certificate per site, whichever listener serves it: two different ACME setups would fight over it.
    if (first && first.json !== json) err(p, `every listener with tls.acme must use the same acme block (differs from ${first.path})`);
    first ??= { path: p, json };
    challenge = a.challenge;
    const url = URL.canParse(a.directory) ? new URL(a.directory) : null;
    if (!url || url.protocol !== 'https:') err(`${p}.directory`, 'the ACME directory must be an https:// URL');
    if (a.eab) {
      const file = resolve(dir, a.eab.hmac_key_file);
      const problem = checkSecretFile(file);
      if (problem) err(`${p}.eab.hmac_key_file`, problem);
      else if (decodeEabKey(readSecretFile(file)) === null) err(`${p}.eab.hmac_key_file`, `${file} does not hold a base64url HMAC key of at least 16 bytes`);
    }
    if (a.ca_root !== undefined) {
      const file = resolve(dir, a.ca_root);
      try {
        trustPool(readFileSync(file, 'utf8'));
      } catch (e) {
        err(`${p}.ca_root`, `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    if (a.store === 'postgres' && !config.state.postgres) err(`${p}.store`, 'store: postgres needs state.postgres');
    // http-01 tokens are shared through PostgreSQL; a tls-alpn-01 handshake can only be answered by the instance that orders.
    if (a.store === 'postgres' && a.challenge === 'tls-alpn-01') err(`${p}.challenge`, 'with store: postgres use http-01: the CA\'s tls-alpn-01 connection may reach an instance that is not the one ordering');
  });
  if (first === null) return;
  const plain = config.listen.map((l, i) => ({ l, i })).filter(({ l }) => !l.tls);
  if (challenge === 'http-01') {
    if (plain.length === 0) err((first as { path: string }).path + '.challenge', 'http-01 is answered on a plain-HTTP listener: add one (port 80), or use tls-alpn-01');
    else if (!plain.some(({ l }) => parseListenAddress(l.address)?.port === 80)) {
      warn((first as { path: string }).path + '.challenge', 'no plain-HTTP listener on port 80: a public CA validates http-01 on port 80 only (fine behind a port mapping)');
    }
  }
  config.sites.forEach((site, si) => {
    site?.hosts.forEach((h, hi) => {
      const host = canonicalSiteHost(h);
      if (host.startsWith('*.')) err(`sites[${si}].hosts[${hi}]`, 'a wildcard name needs the dns-01 challenge, which gatehouse does not answer: serve it with cert_file/key_file');
    });
    if (site && acmeHostnames(site.hosts).length === 0) warn(`sites[${si}].hosts`, 'no DNS name among the hosts: ACME gets no certificate for this site (IP addresses are not ordered)');
  });
}
