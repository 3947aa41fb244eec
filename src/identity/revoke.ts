/**
 * Building revocation entries with the right lifetime — shared by the admin API and the
 * CLI so both write exactly what the gateway reads.
 */
import type { Config } from '../config/schema.js';
import { sha256Hex } from '../stages/token/verifier.js';
import type { RevocationEntry } from '../stores/revocation/types.js';

export class RevocationInputError extends Error {}

/** The largest leeway any issuer grants: a token can be accepted that long past its exp. */
export function maxLeewayMs(config: Pick<Config, 'auth'>): number {
  return config.auth.issuers.reduce((m, i) => Math.max(m, i.leeway), 30_000);
}

const HEX64 = /^[0-9a-f]{64}$/;

export interface JtiInput {
  readonly jti?: string;
  /** The SHA-256 (hex) of a jti, as logs and audit records show it. */
  readonly jtiSha256?: string;
  /** The token's exp (epoch seconds) when known: the entry then lives just until exp + leeway. */
  readonly exp?: number;
}

export function jtiRevocation(config: Pick<Config, 'auth' | 'revocation'>, input: JtiInput, nowMs: number): RevocationEntry {
  let key: string;
  if (input.jtiSha256 !== undefined) {
    if (!HEX64.test(input.jtiSha256)) throw new RevocationInputError('jti_sha256 must be 64 lowercase hex digits');
    key = input.jtiSha256;
  } else if (typeof input.jti === 'string' && input.jti !== '' && input.jti.length <= 1024) key = sha256Hex(input.jti);
  else throw new RevocationInputError('give jti or jti_sha256');
  const leeway = maxLeewayMs(config);
  const cap = nowMs + config.revocation.max_token_lifetime + leeway;
  let expiresAt = cap;
  if (input.exp !== undefined) {
    if (!Number.isFinite(input.exp) || input.exp <= 0) throw new RevocationInputError('exp must be epoch seconds');
    expiresAt = Math.min(cap, Math.floor(input.exp * 1000) + leeway);
  }
  return { kind: 'jti', key, before: 0, expiresAt, createdAt: nowMs };
}

/** Every token of `subject` issued at or before `beforeMs` (default now). */
export function subjectRevocation(config: Pick<Config, 'auth' | 'revocation'>, subject: string, beforeMs: number | undefined, nowMs: number): RevocationEntry {
  if (typeof subject !== 'string' || subject === '' || subject.length > 256) throw new RevocationInputError('subject must be a non-empty string');
  const before = beforeMs ?? nowMs;
  if (!Number.isFinite(before) || before > nowMs + 1000) throw new RevocationInputError('before must not be in the future');
  const expiresAt = before + config.revocation.max_token_lifetime + maxLeewayMs(config);
  return { kind: 'subject', key: subject, before, expiresAt, createdAt: nowMs };
}
