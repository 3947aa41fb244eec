/**
 * `gatehouse check` for LLM sites (docs/llm.md): a site that names a model, grant or
 * credential source that cannot work is a config error with its path, so a typo never
 * turns into "every call refused" or, worse, a credential silently unused.
 */
import { resolve } from 'node:path';
import type { PartialConfig } from '../../config/load.js';
import { checkSecretFile } from '../../config/secrets.js';
import { CredentialKeyError, loadCredentialKeyring } from '../../identity/credential-crypto.js';
import { credentialFilePath } from './credentials.js';

export function validateLlmConfig(config: PartialConfig, dir: string, err: (path: string, message: string) => void): void {
  config.identities.credential_keys.forEach((k, i) => {
    const problem = checkSecretFile(resolve(dir, k.file));
    if (problem) err(`identities.credential_keys[${i}].file`, problem);
  });
  const keyIds = new Set<string>();
  config.identities.credential_keys.forEach((k, i) => {
    if (keyIds.has(k.id)) err(`identities.credential_keys[${i}].id`, `duplicate key id ${JSON.stringify(k.id)}`);
    keyIds.add(k.id);
  });
  if (config.identities.credential_keys.filter((k) => k.active === true).length > 1) err('identities.credential_keys', 'at most one key is active');
  if (config.identities.credential_keys.length > 0 && config.identities.credential_keys.every((k) => checkSecretFile(resolve(dir, k.file)) === null)) {
    try {
      loadCredentialKeyring(config.identities.credential_keys, dir);
    } catch (e) {
      if (e instanceof CredentialKeyError) err('identities.credential_keys', e.message);
      else throw e;
    }
  }

  config.sites.forEach((site, si) => {
    if (site === undefined || site.llm === undefined) return;
    const p = `sites[${si}].llm`;
    const llm = site.llm;
    if (site.auth === undefined) err(p, 'an LLM site needs an `auth` block: credentials and budgets are per identity');
    else {
      if (site.auth.paths !== undefined) err(`sites[${si}].auth.paths`, 'an LLM site requires a token on every path (remove auth.paths)');
      if (site.auth.pass_authorization) err(`sites[${si}].auth.pass_authorization`, "the caller's Authorization never reaches an LLM upstream (the gateway sets the upstream credential)");
    }
    const prefix = site.path_prefix ?? '/';
    if (prefix !== '/' && !'/v1/'.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`)) {
      err(`sites[${si}].path_prefix`, 'an LLM site serves the /v1/... endpoints, which are forwarded as they are: use / or /v1');
    }
    if (llm.max_body_bytes > (site.max_body_bytes ?? Infinity)) err(`${p}.max_body_bytes`, `must not be larger than the site's max_body_bytes (${site.max_body_bytes})`);
    const names = Object.keys(llm.models);
    if (names.length === 0) err(`${p}.models`, 'an LLM site serves at least one model');
    if (names.includes('*')) err(`${p}.models`, '"*" is not a model name');
    const grantIds = new Set<string>();
    llm.grants.forEach((g, gi) => {
      if (grantIds.has(g.id)) err(`${p}.grants[${gi}].id`, `duplicate grant id ${JSON.stringify(g.id)}`);
      grantIds.add(g.id);
      g.models.forEach((mdl, mi) => {
        if (mdl !== '*' && !(mdl in llm.models)) err(`${p}.grants[${gi}].models[${mi}]`, `no model ${JSON.stringify(mdl)} in llm.models`);
      });
    });
    const c = llm.credentials;
    if (Object.keys(c.subjects).length === 0 && !c.registry && Object.keys(c.domains).length === 0 && Object.keys(c.roles).length === 0) {
      err(`${p}.credentials`, 'names no credential source (subjects, registry, domains or roles): every call would be refused');
    }
    if (c.registry && config.identities.credential_keys.length === 0) err(`${p}.credentials.registry`, 'needs identities.credential_keys to decrypt registry credentials');
    for (const kind of ['subjects', 'domains', 'roles'] as const) {
      for (const [name, file] of Object.entries(c[kind])) {
        let path: string;
        try {
          path = credentialFilePath(file, dir);
        } catch (e) {
          err(`${p}.credentials.${kind}.${name}`, (e as Error).message);
          continue;
        }
        const problem = checkSecretFile(path);
        if (problem) err(`${p}.credentials.${kind}.${name}`, problem);
      }
    }
  });
}
