/**
 * Test keys and tokens: real key pairs written as PEM files, tokens signed with jose, and
 * hand-made hostile tokens (alg none, HS256 keyed with the public key, tampered parts).
 */
import { createHmac, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';

export interface TestKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256' | 'EdDSA';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicPem: string;
  readonly file: string;
}

export const keyDir = (): string => mkdtempSync(join(tmpdir(), 'gatehouse-keys-'));

export function makeKey(dir: string, kid: string, alg: TestKey['alg'] = 'RS256', bits = 2048): TestKey {
  const pair =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: bits })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
        : generateKeyPairSync('ed25519');
  const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const file = join(dir, `${kid.replace(/[^a-z0-9-]/gi, '_')}.pub.pem`);
  writeFileSync(file, publicPem);
  return { kid, alg, privateKey: pair.privateKey, publicKey: pair.publicKey, publicPem, file };
}

export interface Claims {
  [k: string]: unknown;
}

export const nowS = (): number => Math.floor(Date.now() / 1000);

/** A valid token unless overridden: sub, type, iss, aud, iat, exp (+5 min), random jti. */
export async function sign(key: TestKey, claims: Claims = {}, header: Record<string, unknown> = {}): Promise<string> {
  const t = nowS();
  const payload: Claims = { sub: 'agent-1', type: 'agent', iss: 'https://issuer.test', aud: 'gatehouse', iat: t, exp: t + 300, jti: randomUUID(), ...claims };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey);
}

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

export function unsigned(claims: Claims, header: Record<string, unknown> = { alg: 'none', kid: 'k1' }): string {
  const t = nowS();
  return `${b64(header)}.${b64({ sub: 'agent-1', type: 'agent', iss: 'https://issuer.test', aud: 'gatehouse', iat: t, exp: t + 300, ...claims })}.`;
}

/** The classic confusion attack: HS256 with the RSA public key (PEM text) as the HMAC secret. */
export function hs256WithPublicKey(key: TestKey, claims: Claims = {}): string {
  const t = nowS();
  const head = `${b64({ alg: 'HS256', kid: key.kid, typ: 'JWT' })}.${b64({ sub: 'agent-1', type: 'agent', iss: 'https://issuer.test', aud: 'gatehouse', iat: t, exp: t + 300, ...claims })}`;
  return `${head}.${createHmac('sha256', key.publicPem).update(head).digest('base64url')}`;
}

export function tamperPayload(token: string, claims: Claims): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Claims;
  return `${h}.${b64({ ...payload, ...claims })}.${s}`;
}

export function tamperSignature(token: string): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const sig = Buffer.from(s, 'base64url');
  sig[0] = (sig[0] ?? 0) ^ 0x01;
  return `${h}.${p}.${sig.toString('base64url')}`;
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
