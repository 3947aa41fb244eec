/**
 * Who may get what (docs/acme.md#policy), compiled once at start:
 *
 * - account creation: the client IP (socket peer; the ACME listener has no proxy in
 *   front) inside `accounts.allow_ips`, and — when `accounts.eab_keys` is set — a valid
 *   External Account Binding (RFC 8555 §7.3.4) MACed with one of those keys;
 * - identifiers: DNS names matching an exact name or a suffix, IP addresses inside a
 *   range. Wildcards are refused: RFC 8555 §8.3 and RFC 8737 §3 allow them only with
 *   dns-01, which this server does not offer.
 */
import { timingSafeEqual } from 'node:crypto';
import { resolve } from 'node:path';
import { flattenedVerify, type JWK } from 'jose';
import type { AcmeServerConfig } from '../../config/schema.js';
import { readSecretFile } from '../../config/secrets.js';
import { compileCidrs, normalizeIp, type CidrSet } from '../../net/ip.js';
import { AcmeProblem } from './problem.js';
import type { Identifier } from './store/types.js';
import { thumbprint } from './jws.js';

const DNS_NAME = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const EAB_ALGS = ['HS256', 'HS384', 'HS512'];

export interface AcmePolicy {
  /** Throws unauthorized when this peer may not create accounts. */
  checkAccountIp(peer: string): void;
  readonly eabRequired: boolean;
  /** Verifies an EAB object against the account key; returns the EAB key id. */
  checkEab(eab: unknown, accountJwk: JWK, newAccountUrl: string): Promise<string>;
  /** The canonical identifier, or rejectedIdentifier / unsupportedIdentifier / malformed. */
  checkIdentifier(raw: unknown): Identifier;
}

export function compilePolicy(c: AcmeServerConfig, configDir: string): AcmePolicy {
  const allowIps: CidrSet | null = c.accounts.allow_ips ? compileCidrs(c.accounts.allow_ips) : null;
  // Read once at start: a changed key file takes a restart (like every secret of a listener).
  const eabKeys = new Map<string, Uint8Array>();
  for (const k of c.accounts.eab_keys) {
    const text = readSecretFile(resolve(configDir, k.file)).trim();
    const key = Buffer.from(text, 'base64url');
    if (key.length < 32 || !/^[A-Za-z0-9_-]+=*$/.test(text)) throw new Error(`acme_server.accounts.eab_keys ${k.kid}: the key file must hold at least 32 bytes, base64url`);
    eabKeys.set(k.kid, key);
  }
  const exact = new Set(c.identifiers.dns_names.map((n) => n.toLowerCase().replace(/\.$/, '')));
  const suffixes = c.identifiers.dns_suffixes.map((s) => {
    const l = s.toLowerCase().replace(/\.$/, '');
    return l.startsWith('.') ? l : `.${l}`;
  });
  const ipRanges = compileCidrs(c.identifiers.ip_ranges);

  return {
    checkAccountIp(peer) {
      if (allowIps !== null && !allowIps.has(peer)) throw new AcmeProblem('unauthorized', 'accounts may not be created from this address');
    },
    eabRequired: eabKeys.size > 0,
    async checkEab(eab, accountJwk, newAccountUrl) {
      if (eab === undefined) throw new AcmeProblem('externalAccountRequired', 'this server requires an external account binding');
      if (eab === null || typeof eab !== 'object' || Array.isArray(eab)) throw new AcmeProblem('malformed', 'externalAccountBinding is not a JWS');
      const o = eab as Record<string, unknown>;
      if (typeof o.protected !== 'string' || typeof o.payload !== 'string' || typeof o.signature !== 'string' || Object.keys(o).length !== 3) {
        throw new AcmeProblem('malformed', 'externalAccountBinding must be a flattened JWS');
      }
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(Buffer.from(o.protected, 'base64url').toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new AcmeProblem('malformed', 'externalAccountBinding header is not JSON');
      }
      if (typeof header.alg !== 'string' || !EAB_ALGS.includes(header.alg)) throw new AcmeProblem('badSignatureAlgorithm', 'externalAccountBinding must be MACed with HS256, HS384 or HS512');
      if (header.nonce !== undefined) throw new AcmeProblem('malformed', 'externalAccountBinding must not carry a nonce');
      if (header.url !== newAccountUrl) throw new AcmeProblem('unauthorized', 'externalAccountBinding url does not match');
      const key = typeof header.kid === 'string' ? eabKeys.get(header.kid) : undefined;
      if (key === undefined) throw new AcmeProblem('unauthorized', 'unknown external account key');
      let payload: Uint8Array;
      try {
        payload = (await flattenedVerify({ protected: o.protected, payload: o.payload, signature: o.signature }, key, { algorithms: [header.alg] })).payload;
      } catch {
        throw new AcmeProblem('unauthorized', 'externalAccountBinding MAC does not verify');
      }
      let bound: JWK;
      try {
        bound = JSON.parse(Buffer.from(payload).toString('utf8')) as JWK;
      } catch {
        throw new AcmeProblem('malformed', 'externalAccountBinding payload is not a JWK');
      }
      // The MACed key must be the account key itself (same thumbprint), or the binding could be replayed for another key.
      const a = Buffer.from(await thumbprint(accountJwk));
      const b = Buffer.from(await thumbprint(bound).catch(() => ''));
      if (a.length !== b.length || !timingSafeEqual(a, b)) throw new AcmeProblem('unauthorized', 'externalAccountBinding is for another key');
      return header.kid as string;
    },
    checkIdentifier(raw) {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new AcmeProblem('malformed', 'an identifier is an object');
      const { type, value } = raw as Record<string, unknown>;
      if (typeof value !== 'string' || value.length === 0 || value.length > 253) throw new AcmeProblem('malformed', 'identifier value missing');
      if (type === 'ip') {
        const ip = normalizeIp(value);
        if (ip === null || ip !== value.toLowerCase()) throw new AcmeProblem('malformed', 'not an IP address in canonical form');
        if (!ipRanges.has(ip)) throw new AcmeProblem('rejectedIdentifier', `${ip} is not an identifier this server issues for`);
        return { type: 'ip', value: ip };
      }
      if (type !== 'dns') throw new AcmeProblem('unsupportedIdentifier', 'only dns and ip identifiers are supported');
      const name = value.toLowerCase();
      if (name.startsWith('*.')) throw new AcmeProblem('rejectedIdentifier', 'wildcard identifiers need dns-01, which this server does not offer');
      if (!DNS_NAME.test(name) || normalizeIp(name) !== null) throw new AcmeProblem('malformed', 'not a DNS name');
      if (!exact.has(name) && !suffixes.some((s) => name.endsWith(s))) throw new AcmeProblem('rejectedIdentifier', `${name} is not an identifier this server issues for`);
      return { type: 'dns', value: name };
    },
  };
}
