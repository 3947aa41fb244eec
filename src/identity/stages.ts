/**
 * The identity part of a site's stage list, in the fixed order token → revocation →
 * identity_rate_limit (docs/lifecycle.md), compiled once per config generation, and the
 * site's identity forwarding towards the upstream.
 */
import type { Config, SiteConfig } from '../config/schema.js';
import type { GatewayContext } from '../pipeline/context.js';
import type { Stage } from '../pipeline/stage.js';
import { createIdentityRateLimitStage } from '../stages/identity-rate-limit/index.js';
import { createRevocationStage } from '../stages/revocation/index.js';
import { compileIssuers } from '../stages/token/compile.js';
import { createIdentityForwarding, type IdentityForwarding } from '../stages/token/forward.js';
import { createTokenStage } from '../stages/token/index.js';
import type { CompiledIssuer } from '../stages/token/verifier.js';
import type { RateLimitStore } from '../stores/rate-limit/types.js';
import type { IdentityServices } from './services.js';

export interface IdentityRuntimeDeps {
  readonly ctx: GatewayContext;
  readonly rateStore: RateLimitStore;
  readonly identity?: IdentityServices | null;
  readonly now?: () => number;
}

const issuerCache = new WeakMap<Config, Map<string, CompiledIssuer>>();

function issuersOf(config: Config, services: IdentityServices): Map<string, CompiledIssuer> {
  let m = issuerCache.get(config);
  if (!m) {
    m = compileIssuers(config.auth, services.dir, (i) => services.remoteJwks(i));
    issuerCache.set(config, m);
  }
  return m;
}

export function identityStages(config: Config, site: SiteConfig, deps: IdentityRuntimeDeps): Stage[] {
  if (!site.auth) return [];
  const services = deps.identity;
  // validate.ts guarantees issuers exist; services exist whenever auth.issuers is not empty.
  if (!services) throw new Error(`site ${site.id} has auth but the identity services are not open (restart to enable auth)`);
  const now = deps.now;
  return [
    createTokenStage({ siteId: site.id, site: site.auth, auth: config.auth, issuers: issuersOf(config, services), maxLifetimeMs: config.revocation.max_token_lifetime, log: deps.ctx.log, metrics: deps.ctx.metrics, now }),
    createRevocationStage({ revocations: services.stores.revocations, registry: services.view, revocation: config.revocation, identities: config.identities, now }),
    createIdentityRateLimitStage({ siteId: site.id, store: deps.rateStore, registry: services.view, identities: config.identities, metrics: deps.ctx.metrics, now }),
  ];
}

export function identityForwarding(config: Config, site: SiteConfig): IdentityForwarding {
  return createIdentityForwarding(config.auth, site.auth !== undefined, site.auth?.pass_authorization ?? false, site.auth?.api_key_header ?? false);
}
