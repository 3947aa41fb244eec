/**
 * A small ACME client for tests of the ACME server (src/acme/server): every request is
 * built here with jose, so a test can break exactly one rule (a replayed nonce, a wrong
 * url, a CSR with an extra name) and see the server's answer. Not the product's ACME
 * client; real clients (certbot, lego, Caddy) are tested against the server too.
 */
import { createServer, type Server } from 'node:http';
import { request as httpsRequest, type Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, sign as cryptoSign, webcrypto } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, FlattenedSign, generateKeyPair, type JWK } from 'jose';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface AcmeReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  json(): Record<string, unknown>;
}

export function acmeHttp(url: string, ca: string, opts: { method?: string; body?: string; contentType?: string; agent?: Agent | false } = {}): Promise<AcmeReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: opts.method ?? 'GET', ca, agent: opts.agent ?? false, headers: opts.body !== undefined ? { 'content-type': opts.contentType ?? 'application/jose+json' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) as Record<string, unknown> });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export interface AccountKey {
  readonly alg: string;
  readonly privateKey: webcrypto.CryptoKey | import('node:crypto').KeyObject;
  readonly jwk: JWK;
}

export async function accountKey(alg: 'ES256' | 'ES384' | 'RS256' | 'EdDSA' = 'ES256', opts: { modulusLength?: number } = {}): Promise<AccountKey> {
  if (opts.modulusLength !== undefined && opts.modulusLength < 2048) {
    // jose refuses to make weak RSA keys; node:crypto does, for the refusal tests.
    const kp = generateKeyPairSync('rsa', { modulusLength: opts.modulusLength });
    return { alg, privateKey: kp.privateKey, jwk: kp.publicKey.export({ format: 'jwk' }) as JWK };
  }
  const kp = await generateKeyPair(alg, { extractable: true, modulusLength: opts.modulusLength });
  return { alg, privateKey: kp.privateKey, jwk: await exportJWK(kp.publicKey) };
}

export class TestAcmeClient {
  dir: Record<string, string> = {};
  kid: string | null = null;
  lastNonce: string | null = null;
  /** A keep-alive agent (benchmarks); tests use a new connection per request. */
  agent: Agent | false = false;
  constructor(
    readonly directoryUrl: string,
    readonly ca: string,
    public key: AccountKey,
  ) {}

  async init(): Promise<this> {
    const r = await acmeHttp(this.directoryUrl, this.ca, { agent: this.agent });
    this.dir = r.json() as Record<string, string>;
    return this;
  }

  async nonce(): Promise<string> {
    const r = await acmeHttp(this.dir.newNonce as string, this.ca, { method: 'HEAD', agent: this.agent });
    return r.headers['replay-nonce'] as string;
  }

  /** Signs `payload` ('' = POST-as-GET) for `url`; `over` replaces protected header members (tests break rules with it). */
  async jws(url: string, payload: unknown, over: Record<string, unknown> = {}, key: AccountKey = this.key, useJwk = this.kid === null): Promise<string> {
    const nonce = 'nonce' in over ? over.nonce : await this.nonce();
    const header: Record<string, unknown> = { alg: key.alg, url, nonce, ...(useJwk ? { jwk: key.jwk } : { kid: this.kid }), ...over };
    for (const k of Object.keys(header)) if (header[k] === undefined) delete header[k];
    this.lastNonce = typeof nonce === 'string' ? nonce : null;
    const bytes = payload === '' ? new Uint8Array() : new TextEncoder().encode(JSON.stringify(payload));
    const pk = key.privateKey;
    if ('asymmetricKeyType' in pk && pk.asymmetricKeyType === 'rsa' && (pk.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
      // Signed by hand: jose will not sign with a weak key, and the server must refuse it.
      const prot = Buffer.from(JSON.stringify(header)).toString('base64url');
      const pl = Buffer.from(bytes).toString('base64url');
      return JSON.stringify({ protected: prot, payload: pl, signature: cryptoSign('sha256', Buffer.from(`${prot}.${pl}`), pk).toString('base64url') });
    }
    const s = await new FlattenedSign(bytes).setProtectedHeader(header as { alg: string }).sign(key.privateKey);
    return JSON.stringify(s);
  }

  async post(url: string, payload: unknown, over: Record<string, unknown> = {}, key?: AccountKey, useJwk?: boolean): Promise<AcmeReply> {
    return acmeHttp(url, this.ca, { method: 'POST', body: await this.jws(url, payload, over, key, useJwk), agent: this.agent });
  }

  async newAccount(payload: Record<string, unknown> = { termsOfServiceAgreed: true }): Promise<AcmeReply> {
    const r = await this.post(this.dir.newAccount as string, payload, {}, this.key, true);
    if (r.status === 200 || r.status === 201) this.kid = r.headers.location as string;
    return r;
  }

  /** An External Account Binding for this client's key (RFC 8555 §7.3.4). */
  async eab(kid: string, hmacKey: Uint8Array, url = this.dir.newAccount as string): Promise<unknown> {
    return new FlattenedSign(new TextEncoder().encode(JSON.stringify(this.key.jwk))).setProtectedHeader({ alg: 'HS256', kid, url }).sign(hmacKey);
  }

  async thumbprint(): Promise<string> {
    return calculateJwkThumbprint(this.key.jwk, 'sha256');
  }

  async newOrder(identifiers: Array<{ type: string; value: string }>, extra: Record<string, unknown> = {}): Promise<AcmeReply> {
    return this.post(this.dir.newOrder as string, { identifiers, ...extra });
  }

  /** Polls `url` (POST-as-GET) until its status is not pending/processing. */
  async poll(url: string, ms = 10_000): Promise<Record<string, unknown>> {
    const end = Date.now() + ms;
    for (;;) {
      const r = await this.post(url, '');
      const j = r.json();
      if ((j.status !== 'pending' && j.status !== 'processing') || Date.now() > end) return j;
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }
}

/** A CSR for `names` (DNS, or IP when it parses as one) with a fresh key of `alg`. */
export async function makeCsr(names: string[], alg: 'P-256' | 'P-384' | 'RSA-1024' | 'RSA-2048' = 'P-256'): Promise<{ der: Buffer; b64: string }> {
  const rsa = alg.startsWith('RSA');
  const algorithm = rsa ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: Number(alg.slice(4)) } : { name: 'ECDSA', namedCurve: alg };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${names[0]}`,
    keys,
    signingAlgorithm: rsa ? algorithm : { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: /^[\d.]+$|:/.test(n) ? 'ip' : 'dns', value: n })))],
  });
  const der = Buffer.from(csr.rawData);
  return { der, b64: der.toString('base64url') };
}

/** An http-01 responder on `host` (a loopback address): answers tokens it was given. */
export async function startHttp01Responder(host: string, port = 0): Promise<{ server: Server; port: number; tokens: Map<string, string>; hits: string[]; close(): Promise<void> }> {
  const tokens = new Map<string, string>();
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '');
    const v = m ? tokens.get(m[1] as string) : undefined;
    if (v === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(v);
  });
  await new Promise<void>((ok) => server.listen(port, host, ok));
  return { server, port: (server.address() as AddressInfo).port, tokens, hits, close: () => new Promise((ok) => server.close(() => ok())) };
}
