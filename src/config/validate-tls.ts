/**
 * Cross-field checks for TLS: listeners, the internal CA block and upstream TLS
 * (docs/tls.md). Called from validate.ts; every problem carries its path.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CA_FILES } from '../pki/ca.js';
import type { PartialConfig } from './load.js';
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
    const t = l.tls;
    if (!t) return;
    tlsListeners++;
    const files = t.cert_file !== undefined || t.key_file !== undefined;
    if (t.internal_ca && files) err(`${p}.tls`, 'use either internal_ca or cert_file/key_file, not both');
    else if (!t.internal_ca && !files) err(`${p}.tls`, 'give cert_file and key_file, or internal_ca: true');
    if (t.internal_ca && !hasCa) err(`${p}.tls.internal_ca`, 'internal_ca needs a top-level ca block');
    if (files) {
      if (t.cert_file === undefined) err(`${p}.tls.cert_file`, 'cert_file is required with key_file');
      else {
        const problem = readable(resolve(dir, t.cert_file));
        if (problem) err(`${p}.tls.cert_file`, problem);
      }
      if (t.key_file === undefined) err(`${p}.tls.key_file`, 'key_file is required with cert_file');
      else {
        const problem = checkSecretFile(resolve(dir, t.key_file));
        if (problem) err(`${p}.tls.key_file`, problem);
      }
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

  config.sites.forEach((site, si) => {
    const t = site?.upstream?.tls;
    if (!site || !t) return;
    const p = `sites[${si}].upstream.tls`;
    if (site.upstream.urls.some((u) => !u.startsWith('https://'))) err(p, 'upstream tls settings apply to https:// upstreams only; every url of this upstream must be https://');
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
