/**
 * The revocation stage (`revocation`), right after token verification, on EVERY
 * authenticated request (the verified-token cache never covers it):
 *
 * 1. the instance must be able to vouch for its revocation set (pushed/polled within
 *    `revocation.max_staleness`), else 503 `revocation_unavailable` (fail closed, unless
 *    `revocation.on_unavailable: allow`);
 * 2. the token's jti, or its subject's cut-off, is revoked → 401 `token_revoked`;
 * 3. the identity registry view must be current (else 503), the subject registered
 *    (else 403 `unknown_identity`, unless `identities.unknown_identity: allow`) and not
 *    suspended (403 `identity_suspended`, also for tokens issued before the suspension);
 * 4. the registry is authoritative for what it records: a token whose type, or whose
 *    domain or role where the registry records one, differs from the registry's is
 *    refused (403 `identity_mismatch`); a token that claims no domain or role gets the
 *    registry's, so policy, LLM grants, logs, audit and the identity headers all read
 *    the registry's value, never a claim the registry contradicts.
 *
 * All checks are in-memory lookups: no store round trip per request.
 */
import type { IdentitiesConfig, RevocationConfig } from '../../config/schema.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { Stage } from '../../pipeline/stage.js';
import type { IdentityView } from '../../stores/identities/view.js';
import type { RevocationStore } from '../../stores/revocation/types.js';

export const REVOCATION = 'revocation';
const INV = ['WWW-Authenticate', 'Bearer realm="gatehouse", error="invalid_token"'];
const REVOKED = new Refusal('token_revoked', REVOCATION, 'token', INV);
const UNAVAILABLE = new Refusal('revocation_unavailable', REVOCATION, 'store', undefined, 'revocation set not confirmed within revocation.max_staleness');
const REGISTRY_UNAVAILABLE = new Refusal('identity_registry_unavailable', REVOCATION, 'registry', undefined, 'identity registry view not refreshed within identities.max_staleness');
const SUSPENDED = new Refusal('identity_suspended', REVOCATION, 'registry');
const UNKNOWN = new Refusal('unknown_identity', REVOCATION, 'registry');
const TYPE_MISMATCH = new Refusal('identity_mismatch', REVOCATION, 'registry', undefined, 'token type differs from the registered type');
const DOMAIN_MISMATCH = new Refusal('identity_mismatch', REVOCATION, 'registry', undefined, 'token domain differs from the registered domain');
const ROLE_MISMATCH = new Refusal('identity_mismatch', REVOCATION, 'registry', undefined, 'token role differs from the registered role');

export interface RevocationStageOptions {
  readonly revocations: RevocationStore;
  readonly registry: IdentityView;
  readonly revocation: RevocationConfig;
  readonly identities: IdentitiesConfig;
  readonly now?: () => number;
}

export function createRevocationStage(opts: RevocationStageOptions): Stage {
  const { revocations, registry } = opts;
  const now = opts.now ?? Date.now;
  const refuseUnavailable = opts.revocation.on_unavailable === 'refuse';
  const refuseUnknown = opts.identities.unknown_identity === 'refuse';
  return {
    id: REVOCATION,
    run: function revocation(ex: Exchange) {
      const id = ex.identity;
      const tok = ex.token;
      if (id === null || tok === null) return undefined;
      const t = now();
      if (refuseUnavailable && !revocations.current(t)) return UNAVAILABLE;
      if (revocations.revoked(tok.jtiHash, id.subject, tok.iat, t)) return REVOKED;
      if (!registry.current(t)) return REGISTRY_UNAVAILABLE;
      const rec = registry.get(id.subject);
      if (rec === undefined) return refuseUnknown ? UNKNOWN : undefined;
      if (rec.status === 'suspended') return SUSPENDED;
      if (rec.type !== id.type) return TYPE_MISMATCH;
      if (rec.domain !== null && id.domain !== null && id.domain !== rec.domain) return DOMAIN_MISMATCH;
      if (rec.role !== null && id.role !== null && id.role !== rec.role) return ROLE_MISMATCH;
      // Only a token that left a recorded attribute out needs a new identity object; the
      // steady state (claims equal to the registry) allocates nothing.
      if ((rec.domain !== null && id.domain === null) || (rec.role !== null && id.role === null)) {
        ex.identity = { ...id, domain: rec.domain ?? id.domain, role: rec.role ?? id.role };
      }
      return undefined;
    },
  };
}
