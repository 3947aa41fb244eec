/**
 * The internal CA: a 10-year root and an intermediate (ECDSA P-256), and leaf
 * certificates for services and clients signed by the intermediate — the step-ca shape
 * Atlas used, built with @peculiar/x509 on Node's WebCrypto.
 *
 * Layout of a CA directory (see docs/tls.md):
 *   root.crt            the trust anchor to distribute (`gatehouse ca trust`)
 *   root.key            PKCS#8 PEM, 0600, encrypted when a root password is given;
 *                       only `ca init` needs it, so it can be moved offline afterwards
 *   intermediate.crt    signs every leaf
 *   intermediate.key    PKCS#8 PEM, 0600, always encrypted (PBES2: PBKDF2-HMAC-SHA256 with
 *                       600,000 iterations, AES-256-CBC; password file), see encrypted-key.ts
 *
 * Private keys never leave this module in any form other than PEM for the caller to
 * write with mode 0600 or to hand to a SecureContext.
 */
import { createPrivateKey, randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { encryptPkcs8, keyEncryption } from './encrypted-key.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

let x509Module: Promise<typeof X509> | null = null;

/**
 * @peculiar/x509, imported by the first function that issues or loads a certificate (a
 * gateway with an internal CA: at start-up), not with this module: the file layout below
 * is read by config validation and the store clients of every gateway, and the library
 * costs ~15 MB of memory (docs/operations.md#memory).
 */
function loadX509(): Promise<typeof X509> {
  x509Module ??= (async () => {
    // @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata API.
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    // @peculiar/x509 uses whatever WebCrypto it is given; Node's is complete for ECDSA P-256.
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    return x509;
  })();
  return x509Module;
}

const ALG: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY = 86_400_000;
export const ROOT_LIFETIME_MS = 3650 * DAY;
export const INTERMEDIATE_LIFETIME_MS = 3650 * DAY;
export const DEFAULT_LEAF_LIFETIME_MS = DAY;
/** Leaves are backdated this much (at most) so a peer whose clock is a little behind accepts them. */
const BACKDATE_MS = 60_000;

export const CA_FILES = {
  rootCert: 'root.crt',
  rootKey: 'root.key',
  intermediateCert: 'intermediate.crt',
  intermediateKey: 'intermediate.key',
} as const;

export class CaError extends Error {
  readonly code = 'ca_error';
}

export interface InitOptions {
  readonly dir: string;
  /** Encrypts the intermediate key. */
  readonly password: string;
  /** Encrypts the root key too when given; otherwise it is written unencrypted (0600). */
  readonly rootPassword?: string;
  readonly commonName?: string;
  readonly now?: Date;
  /** Overwrite an existing CA (never by default: it would orphan every issued certificate). */
  readonly force?: boolean;
}

export interface CaPaths {
  readonly rootCert: string;
  readonly rootKey: string;
  readonly intermediateCert: string;
  readonly intermediateKey: string;
}

export function caPaths(dir: string): CaPaths {
  return {
    rootCert: join(dir, CA_FILES.rootCert),
    rootKey: join(dir, CA_FILES.rootKey),
    intermediateCert: join(dir, CA_FILES.intermediateCert),
    intermediateKey: join(dir, CA_FILES.intermediateKey),
  };
}

function serial(): string {
  const b = randomBytes(16);
  // Positive and never starting with a zero byte: a 128-bit serial, as RFC 5280 wants unique and non-negative.
  b[0] = ((b[0] as number) & 0x7f) | 0x01;
  return b.toString('hex');
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** PKCS#8 PEM; encrypted (PBES2, PBKDF2-HMAC-SHA256 600,000 iterations, AES-256-CBC; OpenSSL-readable) when a passphrase is given. */
async function exportKey(key: CryptoKey, passphrase: string | undefined): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  if (passphrase !== undefined) return encryptPkcs8(der, passphrase);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

export interface ReencryptResult {
  readonly file: string;
  /** What the key was encrypted with before (keyEncryption), null when it was not readable as such. */
  readonly before: ReturnType<typeof keyEncryption>;
}

/**
 * `gatehouse ca reencrypt`: decrypts the intermediate key (and the root key, when it is
 * here, encrypted, and its password is given) with its password and writes it again with
 * the current parameters (encrypted-key.ts), same password. The new file replaces the
 * old one by rename, mode 0600, so a crash leaves one of the two, never half a key.
 */
export async function reencryptCaKeys(dir: string, password: string, rootPassword?: string): Promise<ReencryptResult[]> {
  const p = caPaths(dir);
  const out: ReencryptResult[] = [];
  const todo: Array<[string, string]> = [[p.intermediateKey, password]];
  if (rootPassword !== undefined) {
    if (!existsSync(p.rootKey)) throw new CaError(`${p.rootKey} is not here (moved offline?): run reencrypt on the machine that holds it`);
    todo.push([p.rootKey, rootPassword]);
  }
  for (const [file, pass] of todo) {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (err) {
      throw new CaError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (!pem.includes('ENCRYPTED PRIVATE KEY')) throw new CaError(`${file} is not encrypted; nothing to re-encrypt`);
    let der: Buffer;
    try {
      der = createPrivateKey({ key: pem, format: 'pem', passphrase: pass }).export({ type: 'pkcs8', format: 'der' });
    } catch {
      throw new CaError(`cannot decrypt ${file} (wrong password or damaged key file)`);
    }
    const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
    writePrivate(tmp, encryptPkcs8(der, pass));
    renameSync(tmp, file);
    out.push({ file, before: keyEncryption(pem) });
  }
  return out;
}


async function importKey(pem: string, passphrase: string | undefined): Promise<CryptoKey> {
  let der: Buffer;
  try {
    der = createPrivateKey({ key: pem, format: 'pem', passphrase }).export({ type: 'pkcs8', format: 'der' });
  } catch {
    // Never echo the cause: OpenSSL's message may differ between a wrong password and a damaged file, nothing more useful.
    throw new CaError('cannot decrypt the CA key (wrong password or damaged key file)');
  }
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
}

function writePrivate(path: string, pem: string): void {
  writeFileSync(path, pem, { mode: 0o600 });
  // writeFileSync's mode only applies when the file is created; make sure of it.
  chmodSync(path, 0o600);
}

export async function initCa(opts: InitOptions): Promise<CaPaths> {
  const x509 = await loadX509();
  const p = caPaths(opts.dir);
  if (!opts.force && (existsSync(p.rootCert) || existsSync(p.intermediateKey))) {
    throw new CaError(`a CA already exists in ${opts.dir} (use --force to replace it, which orphans every certificate it issued)`);
  }
  if (opts.password.length < 8) throw new CaError('the CA password must be at least 8 characters');
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const now = opts.now ?? new Date();
  // Only characters that need no escaping in a distinguished name.
  const cn = (opts.commonName ?? 'gatehouse internal').replace(/[^A-Za-z0-9 ._-]/g, '').trim() || 'gatehouse internal';
  // Backdated like leaves, so a peer whose clock is a little behind accepts a CA made a moment ago.
  const start = new Date(now.getTime() - BACKDATE_MS);
  const rootKeys = await generateKeys();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${cn} root CA`,
    notBefore: start,
    notAfter: new Date(now.getTime() + ROOT_LIFETIME_MS),
    signingAlgorithm: SIGN,
    keys: rootKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const interKeys = await generateKeys();
  const inter = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${cn} intermediate CA`,
    issuer: root.subject,
    notBefore: start,
    notAfter: new Date(now.getTime() + INTERMEDIATE_LIFETIME_MS),
    signingAlgorithm: SIGN,
    signingKey: rootKeys.privateKey,
    publicKey: interKeys.publicKey,
    extensions: [
      // pathLen 0: the intermediate signs leaves only, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(interKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  writeFileSync(p.rootCert, root.toString('pem') + '\n', { mode: 0o644 });
  writePrivate(p.rootKey, await exportKey(rootKeys.privateKey, opts.rootPassword));
  writeFileSync(p.intermediateCert, inter.toString('pem') + '\n', { mode: 0o644 });
  writePrivate(p.intermediateKey, await exportKey(interKeys.privateKey, opts.password));
  return p;
}

/** A loaded CA: what issuing needs (the intermediate and its key) and what trusting needs (the root). */
export interface Ca {
  readonly rootPem: string;
  readonly intermediatePem: string;
  readonly intermediate: X509.X509Certificate;
  readonly intermediateKey: CryptoKey;
}

export async function loadCa(dir: string, password: string): Promise<Ca> {
  const x509 = await loadX509();
  const p = caPaths(dir);
  let rootPem: string;
  let intermediatePem: string;
  let keyPem: string;
  try {
    rootPem = readFileSync(p.rootCert, 'utf8');
    intermediatePem = readFileSync(p.intermediateCert, 'utf8');
    keyPem = readFileSync(p.intermediateKey, 'utf8');
  } catch (err) {
    throw new CaError(`cannot read the CA in ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'} (run gatehouse ca init)`);
  }
  const intermediate = new x509.X509Certificate(intermediatePem);
  const intermediateKey = await importKey(keyPem, password);
  // A key that does not belong to the certificate would issue leaves nothing verifies.
  const probe = new Uint8Array([1, 2, 3]);
  const sig = await webcrypto.subtle.sign(SIGN, intermediateKey, probe);
  if (!(await webcrypto.subtle.verify(SIGN, await intermediate.publicKey.export(), sig, probe))) {
    throw new CaError(`${p.intermediateKey} does not belong to ${p.intermediateCert}`);
  }
  return { rootPem, intermediatePem, intermediate, intermediateKey };
}

export function readRootPem(dir: string): string {
  try {
    return readFileSync(caPaths(dir).rootCert, 'utf8');
  } catch (err) {
    throw new CaError(`cannot read ${caPaths(dir).rootCert}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

export interface IssueOptions {
  /** The subject common name; also a SAN (DNS, or IP when it is an address). */
  readonly name: string;
  readonly dnsNames?: readonly string[];
  readonly ips?: readonly string[];
  /** URI names (e.g. SPIFFE ids `spiffe://corp/ops`): client identities for allow lists. */
  readonly uris?: readonly string[];
  readonly lifetimeMs?: number;
  readonly server?: boolean;
  readonly client?: boolean;
  readonly now?: Date;
}

export interface Issued {
  readonly certPem: string;
  /** The leaf followed by the intermediate: what a TLS server or client presents. */
  readonly chainPem: string;
  readonly keyPem: string;
  /** Uppercase hex, as node:crypto's X509Certificate reports it. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** When the certificate was made (the start of its lifetime for renewal). */
  readonly issuedAt: Date;
}

/** An absolute URI without spaces or control characters (what a URI SAN may hold). */
const URI = /^[a-z][a-z0-9+.-]*:[\x21-\x7e]+$/i;
const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export async function issueCertificate(ca: Ca, opts: IssueOptions): Promise<Issued> {
  const x509 = await loadX509();
  const server = opts.server ?? !opts.client;
  const client = opts.client ?? false;
  const lifetime = opts.lifetimeMs ?? DEFAULT_LEAF_LIFETIME_MS;
  if (!(lifetime >= 1000)) throw new CaError('the certificate lifetime must be at least 1s');
  const now = opts.now ?? new Date();
  const notAfter = new Date(now.getTime() + lifetime);
  if (notAfter.getTime() > ca.intermediate.notAfter.getTime()) throw new CaError('the certificate would outlive the intermediate CA');
  const names: X509.JsonGeneralName[] = [];
  const seen = new Set<string>();
  const add = (v: string) => {
    const ipv = isIP(v.replace(/^\[|\]$/g, ''));
    const value = ipv ? v.replace(/^\[|\]$/g, '') : v.toLowerCase();
    const key = (ipv ? 'ip:' : 'dns:') + value;
    if (seen.has(key)) return;
    if (!ipv && !DNS_NAME.test(value)) throw new CaError(`not a DNS name or IP address: ${JSON.stringify(v)}`);
    seen.add(key);
    names.push({ type: ipv ? 'ip' : 'dns', value });
  };
  add(opts.name);
  for (const d of opts.dnsNames ?? []) add(d);
  for (const ip of opts.ips ?? []) {
    if (!isIP(ip)) throw new CaError(`not an IP address: ${JSON.stringify(ip)}`);
    add(ip);
  }
  for (const uri of opts.uris ?? []) {
    if (!URI.test(uri) || !URL.canParse(uri)) throw new CaError(`not an absolute URI: ${JSON.stringify(uri)}`);
    names.push({ type: 'url', value: uri });
  }
  const keys = await generateKeys();
  const eku: string[] = [];
  if (server) eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (client) eku.push(x509.ExtendedKeyUsage.clientAuth);
  // Short-lived leaves get a short backdate (a 6 s test certificate must not start a minute early).
  const notBefore = new Date(now.getTime() - Math.min(BACKDATE_MS, Math.floor(lifetime / 10)));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.name.replace(/[,+"\\<>;=]/g, '')}`,
    issuer: ca.intermediate.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN,
    signingKey: ca.intermediateKey,
    publicKey: keys.publicKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      // ECDSA keys sign (ECDHE handshakes); they never encipher keys.
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.intermediate.publicKey),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  const nodeCert = new NodeX509(certPem);
  return {
    certPem,
    chainPem: certPem + ca.intermediatePem.trimEnd() + '\n',
    keyPem: await exportKey(keys.privateKey, undefined),
    serial: nodeCert.serialNumber.toUpperCase(),
    notBefore,
    notAfter,
    issuedAt: now,
  };
}
