/**
 * Choosing the upstream credential for an identity (docs/llm.md#credentials), in this
 * order, each only if the site's `llm.credentials` names it:
 *
 *   1. the identity's own secret file (`subjects`),
 *   2. the identity's credential in the registry (`registry: true`; encrypted column),
 *   3. a file for its domain (`domains`), then for its role (`roles`) — fallbacks that
 *      exist only because the config lists them.
 *
 * Nothing else: an identity without one is refused (403 no_upstream_credential); there
 * is no implicit shared key, and the caller's own Authorization is never it. Files are
 * read when the config is compiled (start and every reload: that is how they rotate);
 * registry credentials are decrypted on first use and remembered by their ciphertext.
 */
import { resolve } from 'node:path';
import type { SiteLlmConfig } from '../../config/schema.js';
import { CREDENTIAL_PREFIX, readSecretFile, resolveCredential } from '../../config/secrets.js';
import type { CredentialKeyring } from '../../identity/credential-crypto.js';

export interface Chosen {
  readonly value: string;
  readonly source: 'subject' | 'registry' | 'domain' | 'role';
}

export interface CredentialSource {
  /** `stored`: the identity's encrypted registry credential, if any. */
  choose(subject: string, domain: string | null, role: string | null, stored: string | undefined): Chosen | null;
}

/** A credential file of the config: a path relative to the config file, or `credential:NAME` (systemd LoadCredential=). */
export function credentialFilePath(file: string, dir: string): string {
  if (!file.startsWith(CREDENTIAL_PREFIX)) return resolve(dir, file);
  const r = resolveCredential(file);
  if ('error' in r) throw new Error(r.error);
  return r.path;
}

function readAll(files: Record<string, string>, dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, f] of Object.entries(files)) out.set(k, readSecretFile(credentialFilePath(f, dir)));
  return out;
}

export function compileCredentials(cfg: SiteLlmConfig['credentials'], dir: string, keyring: CredentialKeyring | null): CredentialSource {
  const subjects = readAll(cfg.subjects, dir);
  const domains = readAll(cfg.domains, dir);
  const roles = readAll(cfg.roles, dir);
  const registry = cfg.registry && keyring !== null ? keyring : null;
  // Ciphertext → plaintext: decrypting costs more than a Map lookup, and a ciphertext only
  // ever decrypts to one value. Bounded by the registry's size; a new generation starts empty.
  const decrypted = new Map<string, string>();
  return {
    choose(subject, domain, role, stored) {
      const own = subjects.get(subject);
      if (own !== undefined) return { value: own, source: 'subject' };
      if (registry !== null && stored !== undefined) {
        let v = decrypted.get(stored);
        if (v === undefined) {
          // A credential that does not decrypt is no credential (and the caller logs why).
          v = registry.decrypt(subject, stored);
          decrypted.set(stored, v);
        }
        return { value: v, source: 'registry' };
      }
      if (domain !== null) {
        const d = domains.get(domain);
        if (d !== undefined) return { value: d, source: 'domain' };
      }
      if (role !== null) {
        const r = roles.get(role);
        if (r !== undefined) return { value: r, source: 'role' };
      }
      return null;
    },
  };
}
