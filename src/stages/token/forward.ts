/**
 * What the proxy does with identity towards the upstream: headers that carry the
 * verified identity are removed from the client's request on EVERY site (a client must
 * not be able to claim an identity by sending them) and set from `ex.identity` when a
 * token was verified; the caller's `Authorization` header is removed on sites with
 * `auth` unless the site sets `pass_authorization: true` (the token is the caller's
 * credential, not the upstream's).
 */
import type { AuthConfig } from '../../config/schema.js';
import type { Exchange } from '../../pipeline/exchange.js';

export interface IdentityForwarding {
  /** Lowercase header names removed from the client's request. */
  readonly strip: ReadonlySet<string>;
  append(ex: Exchange, out: string[]): void;
}

export function createIdentityForwarding(auth: AuthConfig, siteHasAuth: boolean, passAuthorization: boolean, apiKeyHeader = false): IdentityForwarding {
  const h = auth.identity_headers;
  const names = { subject: h.subject.toLowerCase(), type: h.type.toLowerCase(), role: h.role.toLowerCase(), domain: h.domain.toLowerCase(), agent: h.agent.toLowerCase() };
  const strip = new Set(Object.values(names));
  if (siteHasAuth && !passAuthorization) strip.add('authorization');
  // A token taken from X-Api-Key is the caller's credential too.
  if (siteHasAuth && apiKeyHeader) strip.add('x-api-key');
  return {
    strip,
    append(ex, out) {
      const id = ex.identity;
      if (id === null) return;
      out.push(names.subject, id.subject, names.type, id.type);
      if (id.role !== null) out.push(names.role, id.role);
      if (id.domain !== null) out.push(names.domain, id.domain);
      if (id.agent !== null) out.push(names.agent, id.agent);
    },
  };
}
