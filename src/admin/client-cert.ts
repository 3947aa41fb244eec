/**
 * Client-certificate authentication for the admin API (admin.client_certificates).
 *
 * The HTTPS admin listener asks every client for a certificate but completes the
 * handshake without one, or with one that does not verify (src/server/tls.ts), so probes
 * and scrapers need none. API routes decide per request, here. A certificate is accepted
 * when, in this order:
 *
 *   1. TLS verified it (`socket.authorized`): its chain reaches the trust pool the
 *      connection was made with, it was within its validity period at the handshake, and
 *      OpenSSL's client-purpose check passed;
 *   2. the connection's handshake used the trust pool in force now, so a pool replaced
 *      at reload (or a changed ca_file) also applies to open keep-alive connections;
 *   3. it is within its validity period now: a connection may outlive its certificate;
 *   4. its extended key usage, when present, lists clientAuth — checked here as well so the
 *      rule does not rest on OpenSSL's default purpose alone;
 *   5. one of its identities (cn:, dns:, uri:) is in the allow list; otherwise the answer
 *      is 403 admin_forbidden.
 *
 * Nothing is cached per connection: an allow-list change applies to the next request.
 * The admin API is not a hot path.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { PeerIdentity, peerIdentity } from '../pki/peer-identity.js';

let identify: typeof peerIdentity | null = null;

/**
 * Loads the certificate parser the check needs (pki/peer-identity.ts: @peculiar/x509, ~15 MB
 * of memory). The gateway awaits it at start-up when admin.client_certificates is
 * configured (turning that on takes a restart), so a gateway without it never loads the
 * library and no request waits for it.
 */
export async function prepareClientCertificates(): Promise<void> {
  identify ??= (await import('../pki/peer-identity.js')).peerIdentity;
}

export interface ClientCertPolicy {
  /** Allowed identities as compiled by compileAllowList. */
  readonly allow: ReadonlySet<string>;
  /** Whether this connection's handshake verified against the trust pool in force now. */
  readonly trustedNow: (socket: TLSSocket) => boolean;
}

/** Why a presented certificate was not accepted; for the log, never for the client. */
export type ClientCertCause = 'certificate_not_verified' | 'trust_pool_replaced' | 'certificate_expired' | 'certificate_unreadable' | 'certificate_not_for_client_auth';

export type ClientCertResult =
  | { readonly kind: 'none' }
  | { readonly kind: 'rejected'; readonly cause: ClientCertCause; readonly tlsError?: string }
  | { readonly kind: 'allowed'; readonly principal: string; readonly subject: string; readonly serial: string }
  | { readonly kind: 'forbidden'; readonly subject: string; readonly serial: string };

/** The allow list as compared: DNS names lowercase (peerIdentity lowercases the certificate's), the rest exact. */
export function compileAllowList(entries: readonly string[]): ReadonlySet<string> {
  return new Set(entries.map((e) => (e.startsWith('dns:') ? e.toLowerCase() : e)));
}

export function checkClientCertificate(socket: Socket, policy: ClientCertPolicy, now: number): ClientCertResult {
  if (!(socket instanceof TLSSocket)) return { kind: 'none' };
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return { kind: 'none' };
  if (!socket.authorized) {
    const e = socket.authorizationError as unknown;
    return { kind: 'rejected', cause: 'certificate_not_verified', tlsError: e instanceof Error ? e.message : String(e ?? 'unknown') };
  }
  if (!policy.trustedNow(socket)) return { kind: 'rejected', cause: 'trust_pool_replaced' };
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (!(now >= notBefore && now < notAfter)) return { kind: 'rejected', cause: 'certificate_expired' };
  if (identify === null) throw new Error('checkClientCertificate before prepareClientCertificates()');
  let id: PeerIdentity;
  try {
    id = identify(cert.raw);
  } catch {
    return { kind: 'rejected', cause: 'certificate_unreadable' };
  }
  if (id.clientAuth === false) return { kind: 'rejected', cause: 'certificate_not_for_client_auth' };
  // The subject of a verified certificate is the CA's statement, fit for the log.
  const subject = cert.subject.replace(/\n/g, ', ');
  const serial = cert.serialNumber.toUpperCase();
  const principal = id.identities.find((i) => policy.allow.has(i));
  return principal === undefined ? { kind: 'forbidden', subject, serial } : { kind: 'allowed', principal, subject, serial };
}
