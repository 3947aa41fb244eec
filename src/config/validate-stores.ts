/**
 * Cross-field checks for the store connections' TLS (`state.postgres.tls`,
 * `state.redis.tls`) and the warning for a store reached over the network in clear text
 * (docs/deploy.md#tls-to-the-stores). Called from validate.ts.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { trustPool } from '../pki/trust-pool.js';
import { unencryptedStores } from '../stores/store-tls.js';
import type { PartialConfig } from './load.js';
import type { StoreTlsConfig } from './schema.js';
import { checkSecretFile } from './secrets.js';

type Report = (path: string, message: string) => void;

function checkStoreTls(p: string, t: StoreTlsConfig, hasCa: boolean, dir: string, err: Report): void {
  if (t.internal_ca === true && !hasCa) err(`${p}.internal_ca`, 'internal_ca needs a top-level ca block');
  if (t.ca_file !== undefined) {
    const file = resolve(dir, t.ca_file);
    try {
      trustPool(readFileSync(file, 'utf8'));
    } catch (e) {
      err(`${p}.ca_file`, `cannot use ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (t.server_name !== undefined && !/^[a-z0-9.-]+$/i.test(t.server_name)) err(`${p}.server_name`, 'not a host name');
  if (t.client_cert) {
    try {
      accessSync(resolve(dir, t.client_cert.cert_file), constants.R_OK);
    } catch (e) {
      err(`${p}.client_cert.cert_file`, `cannot read ${resolve(dir, t.client_cert.cert_file)}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    const k = checkSecretFile(resolve(dir, t.client_cert.key_file));
    if (k) err(`${p}.client_cert.key_file`, k);
  }
}

export function validateStores(config: PartialConfig, dir: string, err: Report, warn: Report): void {
  const hasCa = config.ca !== undefined;
  const pg = config.state.postgres;
  if (pg) {
    try {
      const u = new URL(pg.url);
      // postgres.js would honour these and could downgrade to sslmode=require (no verification).
      for (const q of ['sslmode', 'ssl', 'sslrootcert', 'sslcert', 'sslkey']) {
        if (u.searchParams.has(q)) err('state.postgres.url', `the URL may not set ${q}: use state.postgres.tls (always verify-full)`);
      }
    } catch {
      // Reported by validate.ts.
    }
    if (pg.tls) checkStoreTls('state.postgres.tls', pg.tls, hasCa, dir, err);
  }
  const r = config.state.redis;
  if (r?.tls) {
    if (!r.url.startsWith('rediss:')) err('state.redis.tls', 'TLS settings need a rediss:// URL (redis:// is clear text)');
    checkStoreTls('state.redis.tls', r.tls, hasCa, dir, err);
  }
  for (const u of unencryptedStores(config)) warn(u.path, u.message);
}
