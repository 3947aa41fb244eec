/**
 * ACME Renewal Information (RFC 9773): where the directory offers `renewalInfo`, the CA
 * says when a certificate should be renewed (a suggested window; earlier when it plans a
 * revocation). The client picks a random time inside the window, so a fleet does not
 * renew at one instant, asks again after the Retry-After the CA sent, and names the
 * certificate it replaces in the new order (`replaces`).
 */
// @peculiar/x509 (ours and acme-client's) needs the Reflect polyfill loaded before it.
import 'reflect-metadata';
import { AuthorityKeyIdentifierExtension, X509Certificate } from '@peculiar/x509';

/** How long to wait before asking again when the CA sends no Retry-After (RFC 9773 §4.3 suggests hours). */
export const ARI_DEFAULT_RETRY_MS = 6 * 3_600_000;
const ARI_MAX_RETRY_MS = 24 * 3_600_000;
const ARI_MIN_RETRY_MS = 60_000;

/** The ARI certificate id (RFC 9773 §4.1): base64url(AKI keyIdentifier) "." base64url(serial DER content). */
export function ariCertId(leafPem: string): string | null {
  const leaf = new X509Certificate(leafPem);
  const aki = leaf.getExtension(AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) return null;
  let serial = Buffer.from(leaf.serialNumber.length % 2 ? `0${leaf.serialNumber}` : leaf.serialNumber, 'hex');
  while (serial.length > 1 && serial[0] === 0 && ((serial[1] as number) & 0x80) === 0) serial = serial.subarray(1);
  if (((serial[0] as number) & 0x80) !== 0) serial = Buffer.concat([Buffer.from([0]), serial]);
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${serial.toString('base64url')}`;
}

export interface RenewalWindow {
  readonly start: number;
  readonly end: number;
}

/** Parses a renewalInfo answer; null when it is not one (then the lifetime rule applies). */
export function parseRenewalInfo(body: unknown): RenewalWindow | null {
  const w = (body as { suggestedWindow?: { start?: unknown; end?: unknown } } | null)?.suggestedWindow;
  if (!w || typeof w.start !== 'string' || typeof w.end !== 'string') return null;
  const start = Date.parse(w.start);
  const end = Date.parse(w.end);
  if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) return null;
  return { start, end };
}

/** A uniformly random time in the window; `random` in [0, 1). */
export function pickRenewalTime(w: RenewalWindow, random: number): number {
  return Math.floor(w.start + (w.end - w.start) * random);
}

/** When to ask again, from a Retry-After header (seconds or an HTTP date), bounded to [1 min, 24 h]. */
export function ariRetryAfter(header: string | null, now: number): number {
  let ms = ARI_DEFAULT_RETRY_MS;
  if (header !== null && header !== '') {
    const secs = Number(header);
    if (Number.isFinite(secs)) ms = secs * 1000;
    else if (Number.isFinite(Date.parse(header))) ms = Date.parse(header) - now;
  }
  return Math.min(ARI_MAX_RETRY_MS, Math.max(ARI_MIN_RETRY_MS, ms));
}
