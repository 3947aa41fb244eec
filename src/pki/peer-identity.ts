/**
 * The identities a certificate names, for allow lists (the admin listener's client
 * certificates, docs/operations.md#admin-api): its subject CN and its DNS and URI
 * subject alternative names, each as a typed string (`cn:ops-alice`, `dns:ops.internal`,
 * `uri:spiffe://corp/ops`), and whether its extended key usage permits client
 * authentication.
 *
 * Parsed from the DER with @peculiar/x509 rather than from node's text rendering of the
 * SAN extension, whose quoting of unusual names is a presentation format, not an API.
 */
// @peculiar/x509 resolves its parsers through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export interface PeerIdentity {
  /** `cn:…`, `dns:…` (lowercase: DNS names are case-insensitive) and `uri:…` (as written). */
  readonly identities: readonly string[];
  /** null: no extended key usage extension (any usage); otherwise whether clientAuth is listed. */
  readonly clientAuth: boolean | null;
}

export class PeerIdentityError extends Error {
  readonly code = 'certificate_unreadable';
}

/** Typed identity strings of a certificate (DER). Throws PeerIdentityError when it cannot be parsed. */
export function peerIdentity(der: Uint8Array): PeerIdentity {
  let cert: x509.X509Certificate;
  let names: readonly x509.GeneralName[];
  let usages: readonly string[] | null;
  try {
    cert = new x509.X509Certificate(der);
    names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
    const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
    usages = eku ? eku.usages.map(String) : null;
  } catch (err) {
    throw new PeerIdentityError(`cannot parse the certificate: ${(err as Error).message}`);
  }
  const identities: string[] = [];
  // Several CNs make "the" subject name ambiguous; such a certificate is known by its SANs only.
  const cns = cert.subjectName.getField('CN');
  if (cns.length === 1 && cns[0] !== undefined && cns[0] !== '') identities.push(`cn:${cns[0]}`);
  for (const n of names) {
    if (n.type === 'dns') identities.push(`dns:${n.value.toLowerCase()}`);
    else if (n.type === 'url') identities.push(`uri:${n.value}`);
  }
  return { identities, clientAuth: usages === null ? null : usages.includes(CLIENT_AUTH) };
}
