/**
 * Verification keys of one issuer, selected by `kid`. Keys come from PEM public-key
 * files, a JWKS file, or a JWKS URL (fetched with undici, refreshed on an interval, kept
 * usable for a bounded stale period when refreshing fails). Every key is pinned to ONE
 * algorithm, derived from its type (or configured) and checked against the issuer's
 * allowlist at load time, so a token can never pick an algorithm the key was not meant
 * for (HS256 "signed" with an RSA public key, `none`, ...).
 *
 * RSA keys under 2048 bits are a configuration error (refused at start-up and reload);
 * a JWKS URL that serves one has that key dropped and logged.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { request } from 'undici';
import type { IssuerConfig } from '../../config/schema.js';
import type { Logger } from '../../observability/logger.js';

export interface VerificationKey {
  readonly kid: string;
  readonly alg: string;
  readonly key: KeyObject;
}

/** Every problem with an issuer's file keys, each with its config path below the issuer (`keys[0].file`, `jwks_file`). */
export class KeyConfigError extends Error {
  constructor(readonly problems: readonly { readonly path: string; readonly message: string }[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join('; '));
  }
}

/**
 * What a key file holds, by its PEM labels. Node's createPublicKey derives a public key
 * from a private key or a certificate just as readily as it reads a public one, so the
 * label decides: only SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`), exactly one block.
 * A private key on the gateway is a leak waiting to happen (the seed: public keys only);
 * a certificate would be trusted with no check of its chain, validity or usage.
 */
export function publicKeyPemProblem(text: string): string | undefined {
  const labels = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1] as string);
  if (labels.some((l) => l.includes('PRIVATE KEY'))) return 'holds a private key; give the public key only (openssl pkey -pubout)';
  if (labels.some((l) => l.includes('CERTIFICATE'))) return 'holds a certificate; give its public key only (openssl x509 -pubkey -noout)';
  if (labels.length !== 1 || (labels[0] !== 'PUBLIC KEY' && labels[0] !== 'RSA PUBLIC KEY')) return 'not a PEM public key (one PUBLIC KEY block)';
  return undefined;
}

const RSA_ALGS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']);
const EC_ALG_BY_CURVE: Record<string, string> = { 'prime256v1': 'ES256', 'secp384r1': 'ES384', 'secp521r1': 'ES512' };
export const MIN_RSA_BITS = 2048;

/** The one algorithm a key verifies, or an error message. */
export function algorithmFor(key: KeyObject, configured: string | undefined, allowed: readonly string[]): { alg: string } | { error: string } {
  if (key.type !== 'public') return { error: 'not a public key (the gateway holds public keys only)' };
  const t = key.asymmetricKeyType;
  let alg: string;
  if (t === 'rsa' || t === 'rsa-pss') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) return { error: `RSA key of ${bits} bits; at least ${MIN_RSA_BITS} are required` };
    alg = configured ?? 'RS256';
    if (!RSA_ALGS.has(alg)) return { error: `an RSA key cannot verify ${alg}` };
  } else if (t === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
    const natural = EC_ALG_BY_CURVE[curve];
    if (natural === undefined) return { error: `unsupported EC curve ${curve}` };
    alg = configured ?? natural;
    if (alg !== natural) return { error: `a ${curve} key verifies ${natural}, not ${alg}` };
  } else if (t === 'ed25519' || t === 'ed448') {
    alg = configured ?? 'EdDSA';
    if (alg !== 'EdDSA') return { error: `an ${t} key verifies EdDSA, not ${alg}` };
  } else {
    return { error: `unsupported key type ${String(t)}` };
  }
  if (!allowed.includes(alg)) return { error: `algorithm ${alg} is not in this issuer's algorithms list` };
  return { alg };
}

/** RFC 7518 §6.2.2 / §6.3.2 / §6.4: members that only a private key has (`oth`: multi-prime RSA). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth'];

interface Jwk {
  kid?: unknown;
  alg?: unknown;
  use?: unknown;
  kty?: unknown;
  [k: string]: unknown;
}

/** Parses a JWKS document; bad keys are reported in `problems`, never silently used. */
export function parseJwks(text: string, allowed: readonly string[]): { keys: VerificationKey[]; problems: string[] } {
  const problems: string[] = [];
  const keys: VerificationKey[] = [];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { keys, problems: ['not valid JSON'] };
  }
  const list = (doc as { keys?: unknown }).keys;
  if (!Array.isArray(list)) return { keys, problems: ['no "keys" array'] };
  list.forEach((raw: Jwk, i) => {
    if (raw === null || typeof raw !== 'object') return problems.push(`keys[${i}]: not an object`);
    if (typeof raw.kid !== 'string' || raw.kid === '') return problems.push(`keys[${i}]: no kid`);
    if (raw.use !== undefined && raw.use !== 'sig') return; // encryption keys are not ours
    if (raw.kty === 'oct') return problems.push(`keys[${i}] (${raw.kid}): symmetric keys are refused`);
    if (PRIVATE_JWK_MEMBERS.some((m) => m in raw)) return problems.push(`keys[${i}] (${raw.kid}): contains private key material; refused`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: raw as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch (err) {
      return problems.push(`keys[${i}] (${raw.kid}): ${(err as Error).message}`);
    }
    const a = algorithmFor(key, typeof raw.alg === 'string' ? raw.alg : undefined, allowed);
    if ('error' in a) return problems.push(`keys[${i}] (${raw.kid}): ${a.error}`);
    keys.push({ kid: raw.kid, alg: a.alg, key });
    return undefined;
  });
  return { keys, problems };
}

/** Loads an issuer's file-based keys (PEM and JWKS file); throws KeyConfigError listing every problem. */
export function loadStaticKeys(issuer: IssuerConfig, dir: string): VerificationKey[] {
  const problems: { path: string; message: string }[] = [];
  const keys: VerificationKey[] = [];
  issuer.keys.forEach((k, i) => {
    const path = `keys[${i}].file`;
    let text: string;
    try {
      text = readFileSync(resolve(dir, k.file), 'utf8');
    } catch (err) {
      problems.push({ path, message: `key ${k.kid} (${k.file}): ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}` });
      return;
    }
    const notPublic = publicKeyPemProblem(text);
    if (notPublic !== undefined) {
      problems.push({ path, message: `key ${k.kid} (${k.file}): ${notPublic}` });
      return;
    }
    let key: KeyObject;
    try {
      key = createPublicKey(text);
    } catch {
      problems.push({ path, message: `key ${k.kid} (${k.file}): not a PEM public key` });
      return;
    }
    const a = algorithmFor(key, k.alg, issuer.algorithms);
    if ('error' in a) problems.push({ path, message: `key ${k.kid} (${k.file}): ${a.error}` });
    else keys.push({ kid: k.kid, alg: a.alg, key });
  });
  if (issuer.jwks_file !== undefined) {
    const path = 'jwks_file';
    let text = '';
    try {
      text = readFileSync(resolve(dir, issuer.jwks_file), 'utf8');
    } catch (err) {
      problems.push({ path, message: `${issuer.jwks_file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}` });
    }
    if (/-----BEGIN /.test(text)) {
      problems.push({ path, message: `${issuer.jwks_file}: a PEM file, not a JWKS (${publicKeyPemProblem(text) ?? 'list it under keys'})` });
    } else if (text !== '') {
      const parsed = parseJwks(text, issuer.algorithms);
      for (const p of parsed.problems) problems.push({ path, message: `${issuer.jwks_file}: ${p}` });
      keys.push(...parsed.keys);
    }
  }
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k.kid)) problems.push({ path: 'keys', message: `kid ${k.kid} appears twice` });
    seen.add(k.kid);
  }
  if (problems.length > 0) throw new KeyConfigError(problems);
  return keys;
}

/**
 * Keys fetched from a JWKS URL. Lives across reloads (one per URL). `keys()` returns the
 * last good set, or null when none was ever fetched or the last good fetch is older than
 * the stale bound — the token stage then answers 503 rather than trusting stale keys.
 */
export class RemoteJwks {
  private current: Map<string, VerificationKey> | null = null;
  private fetchedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private inflight: Promise<void> | null = null;
  private lastForced = 0;

  constructor(
    readonly url: string,
    private readonly allowed: readonly string[],
    private readonly refreshMs: number,
    private readonly maxStaleMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** Dependency state (`jwks:<url>`): down when a fetch fails, up when one succeeds. */
    private readonly health?: { up(): void; down(err?: unknown): void },
  ) {}

  start(): Promise<void> {
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
    return this.refresh();
  }

  keys(): Map<string, VerificationKey> | null {
    if (this.current === null) return null;
    if (this.now() - this.fetchedAt > this.maxStaleMs) return null;
    return this.current;
  }

  /** An unknown kid may mean the issuer rotated: refetch, at most once per 30 s. */
  unknownKid(): void {
    const t = this.now();
    if (t - this.lastForced < 30_000) return;
    this.lastForced = t;
    void this.refresh();
  }

  refresh(): Promise<void> {
    if (this.inflight) return this.inflight;
    this.inflight = (async () => {
      try {
        const res = await request(this.url, { method: 'GET', headersTimeout: 5000, bodyTimeout: 5000 });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
        if (text.length > 1_000_000) throw new Error('JWKS larger than 1 MB');
        const parsed = parseJwks(text, this.allowed);
        for (const p of parsed.problems) this.log.warn({ event: 'jwks_key_refused', url: this.url, problem: p }, 'JWKS key refused');
        this.current = new Map(parsed.keys.map((k) => [k.kid, k]));
        this.fetchedAt = this.now();
        this.health?.up();
      } catch (err) {
        // Each failed attempt is a debug line; the outage itself is one dependency_down (warn).
        const level = this.health === undefined ? 'warn' : 'debug';
        this.log[level]({ event: 'jwks_fetch_failed', url: this.url, err: (err as Error).message }, 'JWKS fetch failed; keeping the last good keys');
        this.health?.down(err);
      } finally {
        this.inflight = null;
      }
    })();
    return this.inflight;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
