/**
 * PKCS#8 encryption of the CA's private keys with today's parameters: PBES2 with
 * PBKDF2-HMAC-SHA256, 600,000 iterations (OWASP Password Storage Cheat Sheet, 2023) and
 * AES-256-CBC. Node's KeyObject.export({cipher, passphrase}) uses OpenSSL's default of
 * 2,048 iterations with HMAC-SHA1 and has no option to raise it, so the
 * EncryptedPrivateKeyInfo (RFC 5958 §3, RFC 8018 §6.2/A.2/A.4) is built here. Reading needs
 * no code of ours: OpenSSL (createPrivateKey with a passphrase, `openssl pkey`) reads
 * PBES2 with any iteration count, so keys written with the old parameters still load.
 */
import { createCipheriv, pbkdf2Sync, randomBytes } from 'node:crypto';

export const PBKDF2_ITERATIONS = 600_000;

const OID = {
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSHA256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
};

function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const NULL = Buffer.from([0x05, 0x00]);

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (const v of rest) {
    const bytes = [v & 0x7f];
    for (let x = v >>> 7; x > 0; x >>>= 7) bytes.unshift((x & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return tlv(0x06, Buffer.from(out));
}

function integer(v: number): Buffer {
  const bytes: number[] = [];
  for (let x = v; x > 0; x = Math.floor(x / 256)) bytes.unshift(x & 0xff);
  if (bytes.length === 0 || (bytes[0] as number) & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

/** PKCS#8 DER → `ENCRYPTED PRIVATE KEY` PEM, PBES2(PBKDF2-HMAC-SHA256, AES-256-CBC). */
export function encryptPkcs8(der: Buffer, passphrase: string, iterations = PBKDF2_ITERATIONS): string {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const key = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const encrypted = Buffer.concat([cipher.update(der), cipher.final()]);
  const kdf = seq(oid(OID.pbkdf2), seq(octets(salt), integer(iterations), seq(oid(OID.hmacWithSHA256), NULL)));
  const scheme = seq(oid(OID.aes256Cbc), octets(iv));
  const info = seq(seq(oid(OID.pbes2), seq(kdf, scheme)), octets(encrypted));
  const b64 = info.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n');
  return `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${b64}-----END ENCRYPTED PRIVATE KEY-----\n`;
}

/**
 * The key-derivation parameters of an `ENCRYPTED PRIVATE KEY` PEM, for reports (`ca
 * reencrypt`, doctor): PBKDF2 with its iteration count and PRF, another KDF by name, or
 * null for an unencrypted or unreadable file. Reads only the fixed PBES2 prefix.
 */
export function keyEncryption(pem: string): { kdf: 'pbkdf2'; iterations: number; prf: string } | { kdf: string } | null {
  const m = /-----BEGIN ENCRYPTED PRIVATE KEY-----([\s\S]*?)-----END ENCRYPTED PRIVATE KEY-----/.exec(pem);
  if (m === null) return null;
  const der = Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64');
  let i = 0;
  const read = (): { tag: number; body: Buffer } => {
    const tag = der[i++] as number;
    let len = der[i++] as number;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + (der[i++] as number);
    }
    const body = der.subarray(i, i + len);
    return { tag, body };
  };
  // A constructed value: step into its body (read() leaves `i` where the body starts).
  const enter = (): void => void read();
  const skip = (): { tag: number; body: Buffer } => {
    const v = read();
    i += v.body.length;
    return v;
  };
  try {
    enter(); // EncryptedPrivateKeyInfo
    enter(); // encryptionAlgorithm
    if (!skip().body.equals(oid(OID.pbes2).subarray(2))) return { kdf: 'other' };
    enter(); // PBES2-params
    enter(); // keyDerivationFunc
    if (!skip().body.equals(oid(OID.pbkdf2).subarray(2))) return { kdf: 'other' };
    enter(); // PBKDF2-params
    skip(); // salt
    const count = skip();
    const iterations = [...count.body].reduce((n, b) => n * 256 + b, 0);
    let prf = 'hmacWithSHA1';
    const next = der[i];
    if (next === 0x02) skip(); // keyLength
    if (der[i] === 0x30) {
      enter();
      prf = skip().body.equals(oid(OID.hmacWithSHA256).subarray(2)) ? 'hmacWithSHA256' : 'other';
    }
    return { kdf: 'pbkdf2', iterations, prf };
  } catch {
    return null;
  }
}
