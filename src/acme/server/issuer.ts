/**
 * Certificates for finalized orders, and the CRL, from the internal CA's intermediate.
 *
 * The CSR is checked before anything is signed: its signature verifies, its key is
 * P-256, P-384, Ed25519 or RSA of at least 2048 bits (badCSR otherwise), and the names
 * it asks for (SANs, and the CN if any) are exactly the order's identifiers — never
 * more (an unauthorized SAN) and never fewer (RFC 8555 §7.4). The certificate carries
 * only those names, serverAuth, and the CRL Distribution Point.
 */
import { createHash, createPublicKey, randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { isIP } from 'node:net';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { Ca } from '../../pki/ca.js';
import { normalizeIp } from '../../net/ip.js';
import { AcmeProblem } from './problem.js';
import type { Identifier } from './store/types.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const SIGN: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const BACKDATE_MS = 60_000;

export interface CheckedCsr {
  readonly publicKey: x509.PublicKey;
  readonly keyType: string;
  readonly spkiSha256: string;
}

const identKey = (i: Identifier) => `${i.type}:${i.value}`;

export async function checkCsr(b64url: unknown, identifiers: readonly Identifier[]): Promise<CheckedCsr> {
  if (typeof b64url !== 'string' || !/^[A-Za-z0-9_-]+$/.test(b64url)) throw new AcmeProblem('malformed', 'csr must be base64url DER');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(Buffer.from(b64url, 'base64url'));
  } catch {
    throw new AcmeProblem('badCSR', 'the CSR cannot be parsed');
  }
  const spki = Buffer.from(csr.publicKey.rawData);
  let keyType: string;
  try {
    const k = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const d = k.asymmetricKeyDetails ?? {};
    if (k.asymmetricKeyType === 'ec' && d.namedCurve === 'prime256v1') keyType = 'p256';
    else if (k.asymmetricKeyType === 'ec' && d.namedCurve === 'secp384r1') keyType = 'p384';
    else if (k.asymmetricKeyType === 'ed25519') keyType = 'ed25519';
    else if (k.asymmetricKeyType === 'rsa' && (d.modulusLength ?? 0) >= 2048) keyType = 'rsa';
    else throw new Error('weak');
  } catch {
    throw new AcmeProblem('badCSR', 'the CSR key must be P-256, P-384, Ed25519 or RSA of at least 2048 bits');
  }
  let sigOk = false;
  try {
    sigOk = await csr.verify();
  } catch {
    sigOk = false;
  }
  if (!sigOk) throw new AcmeProblem('badCSR', 'the CSR signature does not verify');
  const asked = new Set<string>();
  const sanExt = csr.getExtension('2.5.29.17');
  const san = sanExt ? new x509.SubjectAlternativeNameExtension(sanExt.rawData) : null;
  for (const n of san?.names.items ?? []) {
    if (n.type === 'dns') asked.add(`dns:${n.value.toLowerCase()}`);
    else if (n.type === 'ip') asked.add(`ip:${normalizeIp(n.value) ?? n.value}`);
    else throw new AcmeProblem('badCSR', `the CSR asks for a ${n.type} name, which is never issued`);
  }
  for (const cn of csr.subjectName.getField('CN')) {
    const ip = normalizeIp(cn);
    asked.add(ip !== null ? `ip:${ip}` : `dns:${cn.toLowerCase()}`);
  }
  const want = new Set(identifiers.map(identKey));
  for (const a of asked) if (!want.has(a)) throw new AcmeProblem('badCSR', `the CSR names ${a.slice(a.indexOf(':') + 1)}, which this order did not authorize`);
  for (const w of want) if (!asked.has(w)) throw new AcmeProblem('badCSR', `the CSR does not name ${w.slice(w.indexOf(':') + 1)}, which the order has`);
  return { publicKey: csr.publicKey, keyType, spkiSha256: createHash('sha256').update(spki).digest('base64url') };
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] as number) & 0x7f) | 0x01;
  return b.toString('hex');
}

export interface AcmeIssued {
  readonly serial: string;
  readonly certPem: string;
  readonly chainPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export async function issueFromCsr(ca: Ca, csr: CheckedCsr, identifiers: readonly Identifier[], notAfter: Date, crlUrl: string, now: Date): Promise<AcmeIssued> {
  if (notAfter.getTime() > ca.intermediate.notAfter.getTime()) throw new AcmeProblem('serverInternal', 'the certificate would outlive the intermediate CA');
  const lifetime = notAfter.getTime() - now.getTime();
  const notBefore = new Date(now.getTime() - Math.min(BACKDATE_MS, Math.floor(lifetime / 10)));
  const names: x509.JsonGeneralName[] = identifiers.map((i) => ({ type: i.type === 'ip' || isIP(i.value) ? 'ip' : 'dns', value: i.value }));
  const first = identifiers.find((i) => i.type === 'dns') ?? identifiers[0];
  // RSA keys may also encipher (TLS 1.2 RSA key exchange is not offered, but clients may ask); EC and Ed25519 only sign.
  const rsa = csr.keyType === 'rsa';
  const spkiDer = Buffer.from(csr.publicKey.rawData);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: first && first.type === 'dns' ? `CN=${first.value}` : '',
    issuer: ca.intermediate.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN,
    signingKey: ca.intermediateKey,
    publicKey: csr.publicKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(rsa ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      // Critical when the subject is empty (an IP-only certificate), as RFC 5280 §4.2.1.6 requires.
      new x509.SubjectAlternativeNameExtension(names, !(first && first.type === 'dns')),
      new x509.SubjectKeyIdentifierExtension(createHash('sha1').update(spkiDer).digest('hex')),
      await x509.AuthorityKeyIdentifierExtension.create(ca.intermediate.publicKey),
      new x509.CRLDistributionPointsExtension([crlUrl]),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  return {
    serial: new NodeX509(certPem).serialNumber.toUpperCase(),
    certPem,
    chainPem: certPem + ca.intermediatePem.trimEnd() + '\n',
    notBefore,
    notAfter,
  };
}

/** The CRL of the intermediate: every revoked, unexpired certificate it issued. */
export async function buildCrl(ca: Ca, revoked: ReadonlyArray<{ serial: string; revoked_at: number | null; revocation_reason: number | null }>, now: Date, lifetimeMs: number, number: number): Promise<Buffer> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.intermediate.subject,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + lifetimeMs),
    signingAlgorithm: SIGN,
    signingKey: ca.intermediateKey,
    entries: revoked.map((r) => ({ serialNumber: r.serial, revocationDate: new Date(r.revoked_at ?? now.getTime()), reason: (r.revocation_reason ?? 0) as x509.X509CrlReason })),
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.intermediate.publicKey), new x509.Extension('2.5.29.20', false, crlNumber(number))],
  });
  return Buffer.from(crl.rawData);
}

/** DER INTEGER for the cRLNumber extension (RFC 5280 §5.2.3). */
function crlNumber(n: number): ArrayBuffer {
  let hex = Math.max(0, Math.floor(n)).toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = `00${hex}`;
  const body = Buffer.from(hex, 'hex');
  return new Uint8Array(Buffer.concat([Buffer.from([0x02, body.length]), body])).buffer;
}
