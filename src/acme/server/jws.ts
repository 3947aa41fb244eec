/**
 * The JWS check of every ACME POST (RFC 8555 §6.2-6.5), in the order that lets nothing
 * untrusted reach the handlers:
 *
 *  1. Content-Type application/jose+json, body within max_request_bytes (checked by the caller).
 *  2. Flattened JSON serialization only: exactly `protected`, `payload`, `signature`
 *     (no unprotected `header`, no `signatures`).
 *  3. Protected header: `alg` one of ES256/ES384/RS256/EdDSA (never `none` or an HMAC);
 *     exactly one of `jwk` (newAccount, revokeCert by certificate key) and `kid`
 *     (everything else); `url` equal to the URL this request was sent to; a `nonce`.
 *  4. The key: a public JWK whose type fits `alg` (P-256 for ES256, P-384 for ES384,
 *     Ed25519 for EdDSA, RSA of at least 2048 bits for RS256), or the account `kid` names.
 *  5. The signature (jose's flattenedVerify, `alg` pinned to the header's).
 *  6. The nonce consumed — after the signature, so a forged request cannot burn a client's nonce.
 */
import { calculateJwkThumbprint, flattenedVerify, importJWK, type FlattenedJWSInput, type JWK } from 'jose';
import { AcmeProblem } from './problem.js';

export const JWS_ALGORITHMS = ['ES256', 'ES384', 'RS256', 'EdDSA'] as const;
const ALGS: ReadonlySet<string> = new Set(JWS_ALGORITHMS);
const MIN_RSA_BITS = 2048;

export interface JwsRequest {
  readonly alg: string;
  readonly nonce: string;
  /** The account URL when the request was signed with `kid`. */
  readonly kid: string | null;
  /** The public key when it came in the header (`jwk`). */
  readonly jwk: JWK | null;
  /** '' for POST-as-GET, else the parsed JSON object. */
  readonly payload: Record<string, unknown> | '';
  readonly raw: FlattenedJWSInput;
}

export function parseJson(buf: Buffer | string, what: string): unknown {
  try {
    return JSON.parse(typeof buf === 'string' ? buf : buf.toString('utf8'));
  } catch {
    throw new AcmeProblem('malformed', `${what} is not JSON`);
  }
}

function b64json(s: string, what: string): Record<string, unknown> {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new AcmeProblem('malformed', `${what} is not base64url`);
  const v = parseJson(Buffer.from(s, 'base64url'), what);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new AcmeProblem('malformed', `${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

/** Steps 2-3: the envelope and its protected header, before any key or signature work. */
export function parseJws(body: Buffer, expectedUrl: string, requireNonce = true): { jws: FlattenedJWSInput; header: Record<string, unknown> } {
  const v = parseJson(body, 'the request body');
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new AcmeProblem('malformed', 'the request body is not a JWS');
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'payload,protected,signature') throw new AcmeProblem('malformed', 'only the flattened JWS serialization with protected, payload and signature is accepted');
  if (typeof o.protected !== 'string' || typeof o.payload !== 'string' || typeof o.signature !== 'string') throw new AcmeProblem('malformed', 'JWS members must be strings');
  const header = b64json(o.protected, 'the protected header');
  const alg = header.alg;
  if (typeof alg !== 'string' || !ALGS.has(alg)) throw new AcmeProblem('badSignatureAlgorithm', 'this signature algorithm is not accepted', { extra: { algorithms: [...JWS_ALGORITHMS] } });
  const hasJwk = header.jwk !== undefined;
  const hasKid = header.kid !== undefined;
  if (hasJwk === hasKid) throw new AcmeProblem('malformed', 'the protected header must carry exactly one of jwk and kid');
  if (typeof header.url !== 'string') throw new AcmeProblem('malformed', 'the protected header has no url');
  // RFC 8555 §6.4: a url other than the one the request was sent to is refused as unauthorized.
  if (header.url !== expectedUrl) throw new AcmeProblem('unauthorized', 'the JWS url does not match the request URL');
  if (requireNonce && (typeof header.nonce !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(header.nonce))) throw new AcmeProblem('badNonce', 'the JWS has no valid nonce');
  return { jws: { protected: o.protected, payload: o.payload, signature: o.signature }, header };
}

/** Step 4 for a `jwk` header: a public key of a type that fits `alg`. */
export function checkJwk(jwk: unknown, alg: string): JWK {
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) throw new AcmeProblem('malformed', 'jwk is not an object');
  const k = jwk as JWK;
  if (k.d !== undefined || k.p !== undefined || k.k !== undefined) throw new AcmeProblem('badPublicKey', 'jwk must be a public key');
  const ok =
    (alg === 'ES256' && k.kty === 'EC' && k.crv === 'P-256') ||
    (alg === 'ES384' && k.kty === 'EC' && k.crv === 'P-384') ||
    (alg === 'EdDSA' && k.kty === 'OKP' && k.crv === 'Ed25519') ||
    (alg === 'RS256' && k.kty === 'RSA');
  if (!ok) throw new AcmeProblem('badPublicKey', 'the key type does not fit the signature algorithm');
  if (k.kty === 'RSA') {
    if (typeof k.n !== 'string' || !/^[A-Za-z0-9_-]+$/.test(k.n)) throw new AcmeProblem('badPublicKey', 'RSA key without a modulus');
    const n = Buffer.from(k.n, 'base64url');
    let bits = n.length * 8;
    for (let i = 0; i < n.length && n[i] === 0; i++) bits -= 8;
    const first = n.find((b) => b !== 0) ?? 0;
    bits -= Math.clz32(first) - 24;
    if (bits < MIN_RSA_BITS) throw new AcmeProblem('badPublicKey', `RSA keys need at least ${MIN_RSA_BITS} bits`);
  }
  // Only the members of the public key: a thumbprint and a stored key never carry anything else.
  const pub: JWK = { kty: k.kty };
  for (const m of k.kty === 'RSA' ? ['n', 'e'] : ['crv', 'x', 'y']) if ((k as Record<string, unknown>)[m] !== undefined) (pub as Record<string, unknown>)[m] = (k as Record<string, unknown>)[m];
  return pub;
}

/** Step 5: the signature with `key`; returns the payload ('' for POST-as-GET). */
export async function verifyJws(jws: FlattenedJWSInput, jwk: JWK, alg: string): Promise<Record<string, unknown> | ''> {
  let payload: Uint8Array;
  try {
    const key = await importJWK(jwk, alg);
    payload = (await flattenedVerify(jws, key, { algorithms: [alg] })).payload;
  } catch {
    throw new AcmeProblem('malformed', 'the JWS signature does not verify');
  }
  if (payload.length === 0) return '';
  const v = parseJson(Buffer.from(payload), 'the JWS payload');
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new AcmeProblem('malformed', 'the JWS payload is not a JSON object');
  return v as Record<string, unknown>;
}

export function thumbprint(jwk: JWK): Promise<string> {
  return calculateJwkThumbprint(jwk, 'sha256');
}
