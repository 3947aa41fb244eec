/**
 * Verifying one compact JWS with jose against the issuers a site accepts, then checking
 * what jose leaves to the caller (`iat` not in the future, a bounded lifetime) and mapping
 * the claims to an Identity. Throws TokenError with a stable code; the reason (which
 * check failed) is for the log only.
 */
import { createHash } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { AuthConfig, IssuerConfig } from '../../config/schema.js';
import type { Identity, TokenFacts } from '../../pipeline/identity.js';
import type { RemoteJwks, VerificationKey } from './keys.js';

export type TokenErrorCode = 'invalid_token' | 'token_expired' | 'token_keys_unavailable';

export class TokenError extends Error {
  constructor(
    readonly code: TokenErrorCode,
    readonly reason: string,
  ) {
    super(reason);
  }
}

export interface CompiledIssuer {
  readonly id: string;
  readonly config: IssuerConfig;
  readonly staticKeys: ReadonlyMap<string, VerificationKey>;
  readonly remote: RemoteJwks | null;
}

export interface VerifiedToken {
  readonly identity: Identity;
  readonly facts: TokenFacts;
  /** Until when the cache may return it (validity end, epoch ms). */
  readonly expiresAtMs: number;
  readonly issuer: CompiledIssuer;
  readonly kid: string;
  /**
   * The key came from the issuer's file keys (`keys`, `jwks_file`), which are fixed for
   * the config generation: a cache hit then needs no key lookup. JWKS-URL keys can be
   * dropped by a refresh and are looked up on every hit.
   */
  readonly staticKey: boolean;
}

export function findKey(issuer: CompiledIssuer, kid: string): VerificationKey | undefined {
  return issuer.staticKeys.get(kid) ?? issuer.remote?.keys()?.get(kid);
}

/** Identity values end up in upstream headers, logs and store keys: printable ASCII only. */
const PRINTABLE = /^[\x20-\x7e]{1,256}$/;
const SUBJECT = /^[\x21-\x7e]{1,256}$/;

/** An optional claim: absent → null; present but not a printable string → the token is invalid. */
function stringClaim(payload: JWTPayload, name: string): string | null {
  const v = payload[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || !PRINTABLE.test(v)) throw new TokenError('invalid_token', `claim ${name} is not a printable string of at most 256 characters`);
  return v;
}

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export interface VerifierOptions {
  readonly issuers: readonly CompiledIssuer[];
  readonly claims: AuthConfig['claims'];
  readonly maxLifetimeMs: number;
  readonly now: () => number;
}

export async function verifyToken(token: string, opts: VerifierOptions): Promise<VerifiedToken> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new TokenError('invalid_token', 'undecodable protected header');
  }
  if (typeof header.alg !== 'string') throw new TokenError('invalid_token', 'no alg');
  if (header.crit !== undefined) throw new TokenError('invalid_token', 'crit header not supported');
  // Which issuer: the only one, or the one whose configured `iss` the token names.
  let issuer: CompiledIssuer | undefined;
  if (opts.issuers.length === 1) issuer = opts.issuers[0];
  else {
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw new TokenError('invalid_token', 'undecodable payload');
    }
    issuer = opts.issuers.find((i) => i.config.iss === iss);
  }
  if (issuer === undefined) throw new TokenError('invalid_token', 'no accepted issuer has this iss');
  const cfg = issuer.config;
  let kid = header.kid;
  if (kid === undefined) {
    // A token without kid is accepted only when the issuer has exactly one key.
    const all = [...issuer.staticKeys.keys(), ...(issuer.remote?.keys()?.keys() ?? [])];
    if (all.length !== 1) throw new TokenError('invalid_token', 'no kid and the issuer has several keys');
    kid = all[0] as string;
  }
  if (typeof kid !== 'string' || kid.length > 256) throw new TokenError('invalid_token', 'bad kid');
  const key = findKey(issuer, kid);
  if (key === undefined) {
    if (issuer.remote !== null) {
      if (issuer.remote.keys() === null && !issuer.staticKeys.has(kid)) throw new TokenError('token_keys_unavailable', `JWKS ${issuer.remote.url} not available`);
      issuer.remote.unknownKid();
    }
    throw new TokenError('invalid_token', 'unknown kid');
  }
  // The key is pinned to one algorithm; the token does not get to choose another.
  if (header.alg !== key.alg) throw new TokenError('invalid_token', `alg ${header.alg} does not match key ${kid} (${key.alg})`);
  const nowMs = opts.now();
  const leewayS = cfg.leeway / 1000;
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, key.key, {
      algorithms: [key.alg],
      ...(cfg.iss !== undefined ? { issuer: cfg.iss } : {}),
      ...(cfg.audiences !== undefined ? { audience: cfg.audiences } : {}),
      clockTolerance: leewayS,
      currentDate: new Date(nowMs),
      requiredClaims: cfg.allow_missing_exp ? [] : ['exp'],
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired && err.claim === 'exp') throw new TokenError('token_expired', 'exp passed');
    const e = err as { code?: string; message?: string };
    throw new TokenError('invalid_token', `${e.code ?? 'error'}: ${e.message ?? ''}`);
  }
  const nowS = nowMs / 1000;
  const iat = payload.iat;
  if (iat !== undefined && iat > nowS + leewayS) throw new TokenError('invalid_token', 'iat in the future');
  const maxLifeS = opts.maxLifetimeMs / 1000;
  let validUntilS: number;
  if (payload.exp !== undefined) {
    const from = iat ?? nowS;
    if (payload.exp - from > maxLifeS) throw new TokenError('invalid_token', 'lifetime longer than revocation.max_token_lifetime');
    validUntilS = payload.exp + leewayS;
  } else {
    // Allowed only with allow_missing_exp; still bounded, so revocation entries can expire.
    if (iat === undefined) throw new TokenError('invalid_token', 'neither exp nor iat');
    validUntilS = iat + maxLifeS + leewayS;
    if (validUntilS <= nowS) throw new TokenError('token_expired', 'older than revocation.max_token_lifetime');
  }
  const c = opts.claims;
  const subject = payload[c.subject];
  if (typeof subject !== 'string' || !SUBJECT.test(subject)) throw new TokenError('invalid_token', `claim ${c.subject} (subject) missing or not 1-256 printable characters without spaces`);
  const type = payload[c.type];
  if (type !== 'agent' && type !== 'human') throw new TokenError('invalid_token', `claim ${c.type} (type) is not agent or human`);
  const jti = typeof payload.jti === 'string' && payload.jti !== '' ? payload.jti : null;
  const jtiHash = jti === null ? null : sha256Hex(jti);
  const validUntilMs = Math.floor(validUntilS * 1000);
  return {
    identity: Object.freeze({
      subject,
      type,
      role: stringClaim(payload, c.role),
      domain: stringClaim(payload, c.domain),
      agent: stringClaim(payload, c.agent),
      tokenIdHash: jtiHash,
    }),
    facts: Object.freeze({ jtiHash, iat: typeof iat === 'number' ? iat : null, validUntilMs, issuer: issuer.id }),
    expiresAtMs: validUntilMs,
    issuer,
    kid,
    staticKey: issuer.staticKeys.get(kid) === key,
  };
}
