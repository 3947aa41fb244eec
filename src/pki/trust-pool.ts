/**
 * A trust pool from a PEM bundle: the certificates as PEM (for a SecureContext's `ca`) and
 * their SHA-256 fingerprints, in node's colon-hex form, so a chain that TLS verified can
 * be checked against the pool in force now (src/admin/client-cert.ts).
 */
import { X509Certificate } from 'node:crypto';

export interface TrustPool {
  readonly pems: readonly string[];
  /** fingerprint256 of every certificate in the pool. */
  readonly anchors: ReadonlySet<string>;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Parses every certificate of a PEM bundle; throws when one does not parse or there is none. */
export function trustPool(bundle: string): TrustPool {
  const pems = bundle.match(PEM_CERT) ?? [];
  if (pems.length === 0) throw new Error('no PEM certificate in the file');
  const anchors = new Set<string>();
  pems.forEach((pem, i) => {
    try {
      anchors.add(new X509Certificate(pem).fingerprint256);
    } catch (err) {
      throw new Error(`certificate ${i + 1} of the bundle does not parse: ${(err as Error).message}`);
    }
  });
  return { pems, anchors };
}
