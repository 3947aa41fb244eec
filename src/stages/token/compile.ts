/**
 * Compiling `auth.issuers` once per config generation: file-based keys are read and
 * checked here (a bad key is a config error, see validate.ts), JWKS URL fetchers come
 * from the gateway's services so they survive reloads.
 */
import type { AuthConfig, IssuerConfig } from '../../config/schema.js';
import { loadStaticKeys, type RemoteJwks } from './keys.js';
import type { CompiledIssuer } from './verifier.js';

export function compileIssuers(auth: AuthConfig, dir: string, remote: (issuer: IssuerConfig) => RemoteJwks | null): Map<string, CompiledIssuer> {
  const out = new Map<string, CompiledIssuer>();
  for (const cfg of auth.issuers) {
    const keys = loadStaticKeys(cfg, dir);
    out.set(cfg.id, Object.freeze({ id: cfg.id, config: cfg, staticKeys: new Map(keys.map((k) => [k.kid, k])), remote: cfg.jwks_url !== undefined ? remote(cfg) : null }));
  }
  return out;
}
