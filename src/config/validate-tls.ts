/**
 * Cross-field checks for TLS: listeners, the admin listener (HTTPS and client
 * certificates), the internal CA block and upstream TLS (docs/tls.md). Called from
 * validate.ts; every problem carries its path.
 */
import { memberUrls } from '../stages/proxy/members.js';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { CA_FILES } from '../pki/ca.js';
import { trustPool } from '../pki/trust-pool.js';
import { isWildcardHost, parseListenAddress } from '../server/address.js';
import type { PartialConfig } from './load.js';
import type { ServerTlsConfig } from './schema.js';
import { checkSecretFile } from './secrets.js';

type Report = (path: string, message: string) => void;

function readable(path: string): string | null {
  try {
    accessSync(path, constants.R_OK);
    return null;
  } catch (e) {
    return `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

/** A `tls` block that serves a certificate (a public listener's, the admin listener's). */
function validateServerTls(p: string, t: ServerTlsConfig, hasCa: boolean, dir: string, err: Report): void {
  const files = t.cert_file !== undefined || t.key_file !== undefined;
  if (t.internal_ca && files) err(p, 'use either internal_ca or cert_file/key_file, not both');
  else if (!t.internal_ca && !files) err(p, 'give cert_file and key_file, or internal_ca: true');
  if (t.internal_ca && !hasCa) err(`${p}.internal_ca`, 'internal_ca needs a top-level ca block');
  if (files) {
    if (t.cert_file === undefined) err(`${p}.cert_file`, 'cert_file is required with key_file');
    else {
      const problem = readable(resolve(dir, t.cert_file));
      if (problem) err(`${p}.cert_file`, problem);
    }
    if (t.key_file === undefined) err(`${p}.key_file`, 'key_file is required with cert_file');
    else {
      const problem = checkSecretFile(resolve(dir, t.key_file));
      if (problem) err(`${p}.key_file`, problem);
    }
  }
}

const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const ALLOWED_IDENTITY = /^(cn|dns|uri):(.+)$/s;

/** Why an `admin.client_certificates.allow` entry is not usable, or null. */
function allowEntryProblem(entry: string): string | null {
  const m = ALLOWED_IDENTITY.exec(entry);
  if (!m) return 'an allowed identity is cn:NAME (subject common name), dns:NAME or uri:URI (subject alternative names), matched exactly';
  const [, kind, value] = m as unknown as [string, 'cn' | 'dns' | 'uri', string];
  // A pattern would turn "this certificate" into "any certificate from this CA" by accident.
  if (value.includes('*')) return 'wildcards are not supported: list each identity (a certificate from the trusted CA alone never grants access)';
  if (/\p{Cc}/u.test(value)) return 'an identity may not contain control characters';
  if (kind === 'dns' && !DNS_NAME.test(value)) return `not a DNS name: ${JSON.stringify(value)}`;
  if (kind === 'uri' && (/\s/.test(value) || !URL.canParse(value))) return `not an absolute URI: ${JSON.stringify(value)}`;
  return null;
}

/** admin.tls (an HTTPS admin listener) and admin.client_certificates (its client-certificate authentication). */
function validateAdminTls(config: PartialConfig, dir: string, err: Report): void {
  const a = config.admin;
  const hasCa = config.ca !== undefined;
  if (a.tls) {
    validateServerTls('admin.tls', a.tls, hasCa, dir, err);
    if (a.tls.names !== undefined) {
      if (!a.tls.internal_ca) err('admin.tls.names', 'names apply to an internal_ca certificate; a certificate file carries its own names');
      a.tls.names.forEach((n, i) => {
        const host = n.replace(/^\[|\]$/g, '');
        if (isIP(host) === 0 && !DNS_NAME.test(host)) err(`admin.tls.names[${i}]`, `not a DNS name or IP address: ${JSON.stringify(n)}`);
      });
    }
    const addr = a.enabled ? parseListenAddress(a.listen) : null;
    if (a.tls.internal_ca && addr && isWildcardHost(addr.host) && (a.tls.names ?? []).length === 0) {
      err('admin.tls.names', `the admin listener listens on every interface (${a.listen}): list the names clients reach it by, for its internal_ca certificate`);
    }
  }
  const c = a.client_certificates;
  if (!c) return;
  const p = 'admin.client_certificates';
  if (!a.tls) err(p, 'client certificates need an HTTPS admin listener: add admin.tls');
  if (c.ca_file !== undefined) {
    const file = resolve(dir, c.ca_file);
    const problem = readable(file);
    if (problem) err(`${p}.ca_file`, problem);
    else {
      try {
        trustPool(readFileSync(file, 'utf8'));
      } catch (e) {
        err(`${p}.ca_file`, `${file}: ${(e as Error).message}`);
      }
    }
  } else if (!hasCa) {
    err(`${p}.ca_file`, 'give ca_file (the CAs client certificates must chain to), or a top-level ca block to trust the internal CA root');
  }
  if (c.allow.length === 0) err(`${p}.allow`, 'list the identities allowed to use the admin API (cn:NAME, dns:NAME or uri:URI); an empty list would allow nobody');
  c.allow.forEach((entry, i) => {
    const problem = allowEntryProblem(entry);
    if (problem) err(`${p}.allow[${i}]`, problem);
  });
}

export function validateTls(config: PartialConfig, dir: string, err: Report, warn: Report): void {
  const hasCa = config.ca !== undefined;
  let tlsListeners = 0;
  let redirects = 0;
  config.listen.forEach((l, i) => {
    const p = `listen[${i}]`;
    if (l.redirect_https) {
      redirects++;
      if (l.tls) err(`${p}.redirect_https`, 'a redirecting listener is plain HTTP: remove either tls or redirect_https');
    }
    if (l.default_sni !== undefined && !l.tls) err(`${p}.default_sni`, 'default_sni is for a listener with tls');
    if (!l.tls) return;
    tlsListeners++;
    validateServerTls(`${p}.tls`, l.tls, hasCa, dir, err);
    if (l.default_sni !== undefined && l.tls.internal_ca) {
      const name = l.default_sni.toLowerCase().replace(/\.$/, '');
      const served = config.sites.some((s) => s?.hosts?.some((h) => {
        const host = h.toLowerCase().replace(/\.$/, '');
        return host === name || (host.startsWith('*.') && name.endsWith(host.slice(1)) && !name.slice(0, -host.length + 1).includes('.'));
      }));
      if (!served) err(`${p}.default_sni`, `no site serves ${JSON.stringify(l.default_sni)}, so no internal_ca certificate covers it`);
    }
  });
  if (redirects > 0 && tlsListeners === 0) err('listen', 'redirect_https needs an HTTPS listener (one with tls) to redirect to');

  if (config.ca) {
    const caDir = resolve(dir, config.ca.dir);
    for (const f of [CA_FILES.rootCert, CA_FILES.intermediateCert, CA_FILES.intermediateKey]) {
      if (!existsSync(resolve(caDir, f))) err('ca.dir', `${resolve(caDir, f)} is missing (create the CA with gatehouse ca init --dir ${config.ca.dir})`);
    }
    const problem = checkSecretFile(resolve(dir, config.ca.password_file));
    if (problem) err('ca.password_file', problem);
    if (config.ca.lifetime * (2 / 3) < config.tls.check_interval) warn('ca.lifetime', 'certificates renew faster than tls.check_interval refreshes the expiry gauges');
  }

  validateAdminTls(config, dir, err);

  config.sites.forEach((site, si) => {
    const up = site?.upstream;
    const t = up?.tls;
    if (!up || !t) return;
    const p = `sites[${si}].upstream.tls`;
    if (memberUrls(up).some((u) => !u.startsWith('https://'))) err(p, 'upstream tls settings apply to https:// upstreams only; every url of this upstream must be https://');
    if (t.internal_ca === true && !hasCa) err(`${p}.internal_ca`, 'internal_ca needs a top-level ca block');
    if (t.client_cert === 'internal' && !hasCa) err(`${p}.client_cert`, 'an internal client certificate needs a top-level ca block');
    if (t.ca_file !== undefined) {
      const problem = readable(resolve(dir, t.ca_file));
      if (problem) err(`${p}.ca_file`, problem);
    }
    if (t.server_name !== undefined && !/^[a-z0-9.-]+$/i.test(t.server_name)) err(`${p}.server_name`, 'not a host name');
    if (typeof t.client_cert === 'object') {
      const c = readable(resolve(dir, t.client_cert.cert_file));
      if (c) err(`${p}.client_cert.cert_file`, c);
      const k = checkSecretFile(resolve(dir, t.client_cert.key_file));
      if (k) err(`${p}.client_cert.key_file`, k);
    }
  });
}
