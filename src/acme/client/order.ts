/**
 * One ACME order, start to finish, with the `acme-client` library (RFC 8555 JWS, nonces,
 * polling): the account (created or found by its key, with EAB when configured), a new
 * order for the site's names (`replaces` the old certificate when ARI named it), one
 * challenge per pending authorization answered by gatehouse's own listeners, the CSR with
 * a fresh key, finalize, download. No self-check before telling the CA to validate: the
 * responders are in this process, so what the CA would fetch is known to be there.
 */
// @peculiar/x509 (ours and acme-client's) needs the Reflect polyfill loaded before it.
import 'reflect-metadata';
import { generateKeyPairSync } from 'node:crypto';
import acme from 'acme-client';
import type { AcmeClientConfig } from '../../config/schema.js';
import type { Http01Responder } from './http-01.js';
import type { AcmeStore, StoredCertificate } from './store.js';
import type { TlsAlpnResponder } from './tls-alpn-01.js';

export interface OrderContext {
  readonly config: AcmeClientConfig;
  readonly accountKeyPem: string;
  /** Decoded from eab.hmac_key_file at start (base64url text, as the CA issued it). */
  readonly eabHmacKey: string | null;
  readonly http01: Http01Responder;
  readonly tlsAlpn: TlsAlpnResponder;
  readonly store: AcmeStore;
}

export function generateKey(type: AcmeClientConfig['key_type']): string {
  const { privateKey } =
    type === 'rsa-2048' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: type === 'ecdsa-p384' ? 'P-384' : 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function client(ctx: OrderContext): acme.Client {
  return new acme.Client({
    directoryUrl: ctx.config.directory,
    accountKey: ctx.accountKeyPem,
    ...(ctx.config.eab && ctx.eabHmacKey ? { externalAccountBinding: { kid: ctx.config.eab.kid, hmacKey: ctx.eabHmacKey } } : {}),
    // Polling pending objects: start fast (a CA on the same network validates in well under a second).
    backoffAttempts: 12,
    backoffMin: 250,
    backoffMax: 10_000,
  });
}

/** The directory's renewalInfo URL (ARI), or null when the CA offers none; throws when the directory cannot be read. */
export async function renewalInfoUrl(ctx: OrderContext): Promise<string | null> {
  const c = client(ctx) as unknown as { api: { http: { getDirectory(): Promise<void>; directoryCache: Record<string, unknown> | null } } };
  await c.api.http.getDirectory();
  const url = c.api.http.directoryCache?.renewalInfo;
  return typeof url === 'string' ? url : null;
}

/** Answers one authorization's challenge and waits until the CA has validated it. */
async function answer(ctx: OrderContext, c: acme.Client, authz: acme.Authorization): Promise<void> {
  const type = ctx.config.challenge;
  const challenge = authz.challenges.find((ch) => ch.type === type);
  if (!challenge) throw new Error(`the CA offers no ${type} challenge for ${authz.identifier.value}`);
  const keyAuthorization = await c.getChallengeKeyAuthorization(challenge);
  const name = authz.identifier.value.toLowerCase();
  if (type === 'http-01') {
    ctx.http01.add(challenge.token, keyAuthorization);
    if (ctx.store.shared) await ctx.store.publishChallenge(challenge.token, keyAuthorization);
  } else {
    const [keyPem, certPem] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, generateKey('ecdsa-p256'));
    ctx.tlsAlpn.add(name, certPem.toString(), keyPem.toString());
  }
  try {
    await c.completeChallenge(challenge);
    await c.waitForValidStatus(challenge);
  } finally {
    if (type === 'http-01') {
      ctx.http01.remove(challenge.token);
      if (ctx.store.shared) await ctx.store.withdrawChallenge(challenge.token).catch(() => undefined);
    } else ctx.tlsAlpn.remove(name);
  }
}

/** Orders a certificate for `names` (the first is the subject CN). Throws on any failure, with the CA's problem detail. */
export async function orderCertificate(ctx: OrderContext, names: readonly string[], replaces: string | null): Promise<StoredCertificate> {
  const c = client(ctx);
  await c.createAccount({ termsOfServiceAgreed: true, ...(ctx.config.email ? { contact: [`mailto:${ctx.config.email}`] } : {}) });
  const order = await c.createOrder({ identifiers: names.map((value) => ({ type: 'dns', value })), ...(replaces ? { replaces } : {}) } as Parameters<acme.Client['createOrder']>[0]);
  const authzs = await c.getAuthorizations(order);
  for (const authz of authzs) {
    if (authz.status === 'valid') continue;
    await answer(ctx, c, authz);
  }
  const keyPem = generateKey(ctx.config.key_type);
  const [, csr] = await acme.crypto.createCsr({ commonName: names[0], altNames: [...names] }, keyPem);
  const finalized = await c.finalizeOrder(order, csr);
  const chainPem = await c.getCertificate(finalized);
  return { chainPem, keyPem };
}
