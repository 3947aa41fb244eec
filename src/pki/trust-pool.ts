/**
 * A trust pool from a PEM bundle: every certificate parsed (so a damaged bundle is
 * refused as a whole, by `gatehouse check` and at reload, rather than trusted in part)
 * and kept as PEM for a SecureContext's `ca`.
 */
import { X509Certificate } from 'node:crypto';

export interface TrustPool {
  readonly pems: readonly string[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Parses every certificate of a PEM bundle; throws when one does not parse or there is none. */
export function trustPool(bundle: string): TrustPool {
  const pems = bundle.match(PEM_CERT) ?? [];
  if (pems.length === 0) throw new Error('no PEM certificate in the file');
  pems.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new Error(`certificate ${i + 1} of the bundle does not parse: ${(err as Error).message}`);
    }
  });
  return { pems };
}
