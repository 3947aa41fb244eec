/**
 * Cross-field checks for `auth`, `revocation`, `identities`, `admin.issuer` and the sites'
 * `auth` blocks. Key files are loaded here too, so `gatehouse check` reports an RSA key
 * under 2048 bits, an unreadable PEM or a JWKS with a private key, with its path.
 */
import { resolve } from 'node:path';
import type { PartialConfig } from '../config/load.js';
import { checkSecretFile } from '../config/secrets.js';
import { validatePathPattern } from '../http/path.js';
import { isLoopbackHost } from '../server/address.js';
import { KeyConfigError, loadStaticKeys } from '../stages/token/keys.js';

export function validateIdentityConfig(config: PartialConfig, dir: string, err: (path: string, message: string) => void): void {
  const issuerIds = new Set<string>();
  const issuerIss = new Map<string, string | undefined>();
  config.auth.issuers.forEach((is, i) => {
    const p = `auth.issuers[${i}]`;
    if (issuerIds.has(is.id)) err(`${p}.id`, `duplicate issuer id ${JSON.stringify(is.id)}`);
    issuerIds.add(is.id);
    issuerIss.set(is.id, is.iss);
    if (is.keys.length === 0 && is.jwks_file === undefined && is.jwks_url === undefined) err(p, 'an issuer needs keys, jwks_file or jwks_url');
    if (is.jwks_url !== undefined) {
      try {
        const u = new URL(is.jwks_url);
        if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.hostname.replace(/^\[|\]$/g, '')))) err(`${p}.jwks_url`, 'must be https:// (http:// only on loopback)');
      } catch {
        err(`${p}.jwks_url`, 'not a URL');
      }
    }
    if (is.jwks_max_stale < is.jwks_refresh) err(`${p}.jwks_max_stale`, 'must be at least jwks_refresh');
    try {
      loadStaticKeys(is, dir);
    } catch (e) {
      if (e instanceof KeyConfigError) for (const kp of e.problems) err(`${p}.${kp.path}`, kp.message);
      else throw e;
    }
  });
  const h = config.auth.identity_headers;
  const names = Object.values(h).map((n) => n.toLowerCase());
  if (new Set(names).size !== names.length) err('auth.identity_headers', 'the identity headers must have distinct names');
  for (const n of names) if (['authorization', 'host', 'cookie', 'connection', 'content-length', 'transfer-encoding'].includes(n)) err('auth.identity_headers', `${n} cannot carry the identity`);

  config.sites.forEach((site, si) => {
    if (site === undefined || site.auth === undefined) return;
    const p = `sites[${si}].auth`;
    if (config.auth.issuers.length === 0) err(p, 'the site requires tokens but auth.issuers is empty');
    const ids = site.auth.issuers ?? [...issuerIds];
    site.auth.issuers?.forEach((id, ii) => {
      if (!issuerIds.has(id)) err(`${p}.issuers[${ii}]`, `no issuer ${JSON.stringify(id)} in auth.issuers`);
    });
    if (ids.length > 1) {
      const seen = new Set<string>();
      for (const id of ids) {
        const iss = issuerIss.get(id);
        if (iss === undefined) err(`${p}.issuers`, `issuer ${id} has no iss: a site accepting several issuers picks the issuer by the token's iss`);
        else if (seen.has(iss)) err(`${p}.issuers`, `two accepted issuers share iss ${iss}`);
        else seen.add(iss);
      }
    }
    site.auth.paths?.forEach((pat, pi) => {
      const problem = validatePathPattern(pat);
      if (problem) err(`${p}.paths[${pi}]`, problem);
    });
    if (site.auth.paths && site.auth.paths.length === 0) err(`${p}.paths`, 'an empty path list protects nothing; omit `paths` to protect every path');
  });

  if (config.identities.store === 'postgres' && !config.state.postgres) err('identities.store', 'identities.store is postgres but no state.postgres block is given');
  if (config.identities.human_rpm_by_role.default === undefined) err('identities.human_rpm_by_role', 'needs a `default` entry (humans whose role is not listed)');
  if (config.revocation.max_token_lifetime < 60_000) err('revocation.max_token_lifetime', 'must be at least 1m');
  const iss = config.admin.issuer;
  if (iss) {
    const problem = checkSecretFile(resolve(dir, iss.key_file));
    if (problem) err('admin.issuer.key_file', problem);
  }
}
