/**
 * Issuing: key pairs and signed tokens. Used by `gatehouse keys generate`,
 * `gatehouse token issue` and (only when `admin.issuer` is configured) the admin API's
 * POST /v1/tokens. Every token gets a random `jti` (two tokens issued in the same second
 * differ), `iat`, `exp` (never unlimited: 15 min for humans, 1 h for agents by default,
 * at most the maximum lifetime), `iss`, and `kid` in its header.
 */
import { createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair, SignJWT } from 'jose';

export type IssueAlg = 'RS256' | 'ES256' | 'EdDSA';

export const DEFAULT_TTL_S = { human: 15 * 60, agent: 60 * 60 } as const;

export class IssueInputError extends Error {}

export interface GeneratedKeys {
  readonly privateKeyFile: string;
  readonly publicKeyFile: string;
  readonly jwksFile: string;
  readonly kid: string;
  readonly alg: IssueAlg;
}

export async function generateKeys(outDir: string, opts: { alg?: IssueAlg; bits?: number; kid?: string } = {}): Promise<GeneratedKeys> {
  const alg = opts.alg ?? 'RS256';
  const bits = opts.bits ?? 4096;
  if (alg === 'RS256' && (bits < 2048 || bits > 16384)) throw new IssueInputError('--bits must be between 2048 and 16384');
  const kid = opts.kid ?? `${alg.toLowerCase()}-${new Date().toISOString().slice(0, 10)}-${randomUUID().slice(0, 8)}`;
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(kid)) throw new IssueInputError('--kid may contain letters, digits, . _ - only');
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: bits } : {}), ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const privateKeyFile = join(outDir, `${kid}.key.pem`);
  const publicKeyFile = join(outDir, `${kid}.pub.pem`);
  const jwksFile = join(outDir, `${kid}.jwks.json`);
  // Created with mode 0600 (and chmod in case the file existed): the private key is a secret file.
  writeFileSync(privateKeyFile, await exportPKCS8(privateKey), { mode: 0o600, flag: 'wx' });
  chmodSync(privateKeyFile, 0o600);
  writeFileSync(publicKeyFile, await exportSPKI(publicKey), { mode: 0o644 });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }, null, 2) + '\n', { mode: 0o644 });
  return { privateKeyFile, publicKeyFile, jwksFile, kid, alg };
}

export interface IssueRequest {
  readonly sub: string;
  readonly type: 'agent' | 'human';
  readonly role?: string;
  readonly domain?: string;
  readonly agent?: string;
  /** Seconds. */
  readonly ttl?: number;
  readonly aud?: string;
  readonly iss: string;
  readonly kid: string;
  readonly alg?: IssueAlg;
}

export interface ClaimNames {
  readonly subject: string;
  readonly type: string;
  readonly role: string;
  readonly domain: string;
  readonly agent: string;
}

export const DEFAULT_CLAIMS: ClaimNames = { subject: 'sub', type: 'type', role: 'role', domain: 'domain', agent: 'agent_id' };

export function algOf(key: KeyObject): IssueAlg {
  const t = key.asymmetricKeyType;
  if (t === 'rsa') return 'RS256';
  if (t === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  if (t === 'ed25519') return 'EdDSA';
  throw new IssueInputError(`unsupported signing key type ${String(t)}`);
}

export function loadPrivateKey(pem: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch {
    throw new IssueInputError('the key file is not a PEM private key');
  }
}

export async function issueToken(key: KeyObject, r: IssueRequest, opts: { nowMs?: number; maxTtlS?: number; claims?: ClaimNames } = {}): Promise<{ token: string; jti: string; exp: number; iat: number }> {
  const claims = opts.claims ?? DEFAULT_CLAIMS;
  if (typeof r.sub !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(r.sub)) throw new IssueInputError('sub must be 1-256 printable characters');
  if (r.type !== 'agent' && r.type !== 'human') throw new IssueInputError('type must be agent or human');
  const ttl = r.ttl ?? DEFAULT_TTL_S[r.type];
  const maxTtl = opts.maxTtlS ?? 86_400;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > maxTtl) throw new IssueInputError(`ttl must be 1..${maxTtl} seconds`);
  const alg = r.alg ?? algOf(key);
  const iat = Math.floor((opts.nowMs ?? Date.now()) / 1000);
  const jti = randomUUID();
  const payload: Record<string, unknown> = { [claims.subject]: r.sub, [claims.type]: r.type };
  if (r.role) payload[claims.role] = r.role;
  if (r.domain) payload[claims.domain] = r.domain;
  if (r.agent) payload[claims.agent] = r.agent;
  const jwt = new SignJWT(payload).setProtectedHeader({ alg, kid: r.kid, typ: 'JWT' }).setIssuedAt(iat).setExpirationTime(iat + ttl).setJti(jti).setIssuer(r.iss);
  if (claims.subject === 'sub') jwt.setSubject(r.sub);
  if (r.aud) jwt.setAudience(r.aud);
  return { token: await jwt.sign(key), jti, exp: iat + ttl, iat };
}
