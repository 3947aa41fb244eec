/**
 * The ACME server (RFC 8555) on the internal CA: its own HTTPS listener, certificate
 * from the internal CA (renewed at 2/3 of its lifetime like every internal certificate),
 * and the protocol a client needs (docs/acme.md):
 *
 *   GET  /acme/directory          directory
 *   HEAD/GET /acme/new-nonce      a fresh Replay-Nonce
 *   POST /acme/new-account        create, find (onlyReturnExisting), EAB, IP policy
 *   POST /acme/acct/<id>          read, update contact, deactivate
 *   POST /acme/acct/<id>/orders   the account's orders
 *   POST /acme/key-change         key rollover
 *   POST /acme/new-order          new order (identifier policy, limits, authz reuse)
 *   POST /acme/order/<id>         read (Retry-After while pending/processing)
 *   POST /acme/order/<id>/finalize  CSR → certificate
 *   POST /acme/authz/<id>         read, deactivate
 *   POST /acme/chall/<authz>/<type>  read, respond (validation runs in the background)
 *   POST /acme/cert/<serial>      leaf + intermediate, application/pem-certificate-chain
 *   POST /acme/revoke-cert        by the account that ordered it, or by the certificate key
 *   GET  /acme/crl                the intermediate's CRL (DER)
 *
 * No security decision here is made on anything but the verified JWS (jws.ts) and the
 * compiled policy (policy.ts); every refusal is an RFC 7807 problem (problem.ts).
 */
import { createHash, createPublicKey, randomBytes, X509Certificate as NodeX509 } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import type { AcmeServerConfig } from '../../config/schema.js';
import { normalizeIp } from '../../net/ip.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { issueCertificate, type Ca } from '../../pki/ca.js';
import { parseListenAddress } from '../../server/address.js';
import { TLS_BASE_OPTIONS } from '../../server/tls.js';
import { createChallengeValidator, type ChallengeValidator } from './challenges.js';
import { buildCrl, checkCsr, issueFromCsr } from './issuer.js';
import { checkJwk, parseJws, thumbprint, verifyJws } from './jws.js';
import { compilePolicy, type AcmePolicy } from './policy.js';
import { AcmeProblem, type AcmeErrorType } from './problem.js';
import type { AccountRecord, AcmeStore, AuthzRecord, ChallengeRecord, ChallengeType, Identifier, NonceStore, OrderRecord, ProblemRecord } from './store/types.js';

/** What issuance and revocation report to the audit trail (docs/acme.md#audit). */
export interface AcmeAuditEvent {
  readonly action: 'certificate_issued' | 'certificate_revoked';
  readonly serial: string;
  readonly account: string;
  readonly names: readonly string[];
  readonly clientIp: string;
  readonly path: string;
  /** Revocation reason code (RFC 5280), revocations only. */
  readonly reason: number | null;
}

export interface AcmeServerOptions {
  readonly config: AcmeServerConfig;
  readonly configDir: string;
  readonly ca: Ca;
  /** Lifetime of the listener's own certificate (the `ca.lifetime` of the config). */
  readonly listenerCertLifetimeMs: number;
  readonly store: AcmeStore;
  readonly nonces: NonceStore;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly audit?: (e: AcmeAuditEvent) => Promise<void>;
  /** Epoch-ms clock (tests). */
  readonly now?: () => number;
}

const PEM_CHAIN = 'application/pem-certificate-chain';
const REVOCATION_REASONS = new Set([0, 1, 3, 4, 5, 9]);
const MAX_IDENTIFIERS = 100;
const MAX_CONTACTS = 10;

const id = () => randomBytes(16).toString('base64url');
const iso = (ms: number) => new Date(ms).toISOString();

interface Ctx {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly path: string;
  readonly peer: string;
}

interface Verified {
  readonly payload: Record<string, unknown> | '';
  readonly account: AccountRecord | null;
  readonly jwk: JWK;
  readonly url: string;
}

export class AcmeServer {
  private readonly server: Server;
  private base = '';
  private readonly policy: AcmePolicy;
  private readonly validator: ChallengeValidator;
  private readonly now: () => number;
  private crl: { der: Buffer; at: number } | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private readonly names: string[];
  private readonly pending = new Set<Promise<void>>();
  private closed = false;

  private constructor(private readonly o: AcmeServerOptions) {
    this.policy = compilePolicy(o.config, o.configDir);
    this.validator = createChallengeValidator(o.config.challenges);
    this.now = o.now ?? Date.now;
    const addr = parseListenAddress(o.config.listen);
    if (!addr) throw new Error(`acme_server.listen: bad address ${o.config.listen}`);
    this.names = o.config.names ? [...o.config.names] : [addr.host === '' ? 'localhost' : addr.host];
    this.server = createServer({ ...TLS_BASE_OPTIONS, handshakeTimeout: 10_000 }, (req, res) => void this.handle(req, res));
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
  }

  static async start(o: AcmeServerOptions): Promise<AcmeServer> {
    const s = new AcmeServer(o);
    await s.renewListenerCert();
    const addr = parseListenAddress(o.config.listen);
    await new Promise<void>((ok, fail) => {
      s.server.once('error', fail);
      s.server.listen(addr?.port ?? 0, addr?.host === '' ? undefined : addr?.host, () => {
        s.server.off('error', fail);
        ok();
      });
    });
    const port = (s.server.address() as AddressInfo).port;
    const host = s.names[0] as string;
    s.base = (o.config.external_url ?? `https://${normalizeIp(host)?.includes(':') ? `[${host}]` : host}:${port}`).replace(/\/$/, '');
    o.log.info({ event: 'acme_server_listening', directory: s.directoryUrl, store: o.store.kind }, 'ACME server listening');
    return s;
  }

  get directoryUrl(): string {
    return `${this.base}/acme/directory`;
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  private url(path: string): string {
    return `${this.base}/acme/${path}`;
  }

  private get crlUrl(): string {
    return this.o.config.crl_url ?? this.url('crl');
  }

  /** Issues (and later renews) the listener's own certificate from the internal CA. */
  private async renewListenerCert(): Promise<void> {
    const dns = this.names.filter((n) => normalizeIp(n) === null);
    const ips = this.names.filter((n) => normalizeIp(n) !== null);
    const name = this.names[0] as string;
    try {
      const issued = await issueCertificate(this.o.ca, { name, dnsNames: dns.filter((d) => d !== name), ips: ips.filter((i) => i !== name), lifetimeMs: this.o.listenerCertLifetimeMs, server: true });
      this.server.setSecureContext({ ...TLS_BASE_OPTIONS, cert: issued.chainPem, key: issued.keyPem });
      this.o.metrics.tlsCertExpiry.labels('acme-server').set(issued.notAfter.getTime() / 1000);
      this.o.metrics.tlsCertExpiring.labels('acme-server').set(0);
      const renewIn = ((issued.notAfter.getTime() - issued.issuedAt.getTime()) * 2) / 3;
      this.arm(renewIn);
    } catch (err) {
      if (this.renewTimer === null && !this.server.listening) throw err;
      this.o.metrics.tlsRenewalFailures.labels('acme-server').inc();
      this.o.log.error({ event: 'tls_renewal_failed', name: 'acme-server', err: (err as Error).message }, 'ACME listener certificate renewal failed; retrying in 30s');
      this.arm(30_000);
    }
  }

  private arm(ms: number): void {
    if (this.closed) return;
    this.renewTimer = setTimeout(() => void this.renewListenerCert(), Math.min(ms, 2 ** 31 - 1));
    this.renewTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    const done = new Promise<void>((ok) => this.server.close(() => ok()));
    this.server.closeAllConnections();
    await done;
    // Validations in flight finish (they are bounded by challenges.timeout) before the stores close.
    await Promise.allSettled([...this.pending]);
    await this.o.store.close();
    await this.o.nonces.close();
  }

  // ---- plumbing ---------------------------------------------------------------------------

  private async nonce(): Promise<string> {
    const n = randomBytes(16).toString('base64url');
    await this.o.nonces.add(n, this.now() + this.o.config.nonce_lifetime);
    return n;
  }

  private async send(c: Ctx, status: number, body: unknown, headers: Record<string, string> = {}, nonce = true): Promise<void> {
    const h: Record<string, string> = { 'cache-control': 'no-store', link: `<${this.url('directory')}>;rel="index"`, ...headers };
    if (nonce) h['replay-nonce'] = await this.nonce();
    let payload: string | Buffer = '';
    if (Buffer.isBuffer(body)) payload = body;
    else if (typeof body === 'string') payload = body;
    else if (body !== null) {
      payload = JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    if (headers.link && !headers.link.includes('rel="index"')) h.link = `${headers.link}, <${this.url('directory')}>;rel="index"`;
    c.res.writeHead(status, h);
    c.res.end(c.req.method === 'HEAD' ? undefined : payload);
  }

  private async fail(c: Ctx, err: unknown): Promise<void> {
    const p = err instanceof AcmeProblem ? err : new AcmeProblem('serverInternal', 'the server failed to handle the request');
    if (!(err instanceof AcmeProblem)) this.o.log.error({ event: 'acme_internal_error', path: c.path, err: (err as Error)?.message ?? String(err) }, 'ACME request failed');
    else this.o.log.info({ event: 'acme_refused', path: c.path, type: p.type, detail: p.detail, client_ip: c.peer }, 'ACME request refused');
    this.o.metrics.acmeErrors.labels(p.type).inc();
    try {
      // Every error carries a fresh nonce: a client that got badNonce retries with it (RFC 8555 §6.5).
      await this.send(c, p.status, p.toJSON(), { 'content-type': 'application/problem+json' });
    } catch {
      if (!c.res.headersSent) {
        c.res.writeHead(500, { 'content-type': 'application/problem+json' });
        c.res.end(JSON.stringify(new AcmeProblem('serverInternal', 'the server failed to handle the request').toJSON()));
      } else c.res.destroy();
    }
  }

  private readBody(c: Ctx): Promise<Buffer> {
    const max = this.o.config.max_request_bytes;
    const declared = Number(c.req.headers['content-length'] ?? NaN);
    if (declared > max) return Promise.reject(new AcmeProblem('malformed', `the request body is larger than ${max} bytes`, { status: 413 }));
    return new Promise((ok, fail) => {
      const chunks: Buffer[] = [];
      let size = 0;
      c.req.on('data', (d: Buffer) => {
        size += d.length;
        if (size > max) {
          fail(new AcmeProblem('malformed', `the request body is larger than ${max} bytes`, { status: 413 }));
          c.req.destroy();
          return;
        }
        chunks.push(d);
      });
      c.req.on('end', () => ok(Buffer.concat(chunks)));
      c.req.on('error', () => fail(new AcmeProblem('malformed', 'the request body was cut off')));
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] as string;
    const c: Ctx = { req, res, path, peer: normalizeIp(req.socket.remoteAddress ?? '') ?? '' };
    try {
      if (path === '/acme/directory' && (req.method === 'GET' || req.method === 'HEAD')) return await this.send(c, 200, this.directory(), {}, false);
      if (path === '/acme/new-nonce' && (req.method === 'GET' || req.method === 'HEAD')) return await this.send(c, req.method === 'GET' ? 204 : 200, null);
      if (path === '/acme/crl' && (req.method === 'GET' || req.method === 'HEAD')) return await this.serveCrl(c);
      if (!path.startsWith('/acme/')) throw new AcmeProblem('malformed', 'no such resource', { status: 404 });
      if (req.method !== 'POST') throw new AcmeProblem('malformed', 'ACME resources take POST (RFC 8555 §6.3)', { status: 405 });
      await this.post(c);
    } catch (err) {
      await this.fail(c, err);
    }
  }

  private directory(): Record<string, unknown> {
    return {
      newNonce: this.url('new-nonce'),
      newAccount: this.url('new-account'),
      newOrder: this.url('new-order'),
      revokeCert: this.url('revoke-cert'),
      keyChange: this.url('key-change'),
      meta: { externalAccountRequired: this.policy.eabRequired },
    };
  }

  /** Steps 1-6 of jws.ts: the verified request, or a problem. */
  private async verify(c: Ctx, keyFrom: 'kid' | 'jwk' | 'either'): Promise<Verified> {
    const ct = (c.req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (ct !== 'application/jose+json') throw new AcmeProblem('malformed', 'Content-Type must be application/jose+json', { status: 415 });
    const body = await this.readBody(c);
    const url = this.base + c.path;
    const { jws, header } = parseJws(body, url);
    const alg = header.alg as string;
    let jwk: JWK;
    let account: AccountRecord | null = null;
    if (header.jwk !== undefined) {
      if (keyFrom === 'kid') throw new AcmeProblem('malformed', 'this resource must be signed with the account key (kid)');
      jwk = checkJwk(header.jwk, alg);
    } else {
      if (keyFrom === 'jwk') throw new AcmeProblem('malformed', 'this resource must be signed with a jwk');
      const kid = header.kid;
      const prefix = this.url('acct/');
      if (typeof kid !== 'string' || !kid.startsWith(prefix)) throw new AcmeProblem('accountDoesNotExist', 'kid is not an account URL of this server');
      account = await this.o.store.account(kid.slice(prefix.length));
      if (!account) throw new AcmeProblem('accountDoesNotExist', 'no such account');
      jwk = checkJwk(account.jwk, alg);
    }
    const payload = await verifyJws(jws, jwk, alg);
    if (!(await this.o.nonces.consume(header.nonce as string, this.now()))) throw new AcmeProblem('badNonce', 'the nonce is unknown, used or expired');
    // A deactivated or revoked account may do nothing more (RFC 8555 §7.3.6); checked after the signature so the answer proves nothing to a forger.
    if (account !== null && account.status !== 'valid') throw new AcmeProblem('unauthorized', `the account is ${account.status}`);
    return { payload, account, jwk, url };
  }

  private async post(c: Ctx): Promise<void> {
    const p = c.path.slice('/acme/'.length);
    const parts = p.split('/');
    if (p === 'new-account') return this.newAccount(c, await this.verify(c, 'jwk'));
    if (p === 'revoke-cert') return this.revokeCert(c, await this.verify(c, 'either'));
    const v = await this.verify(c, 'kid');
    const acct = v.account as AccountRecord;
    if (p === 'new-order') return this.newOrder(c, v, acct);
    if (p === 'key-change') return this.keyChange(c, v, acct);
    if (parts[0] === 'acct' && parts.length === 2) return this.accountResource(c, v, acct, parts[1] as string);
    if (parts[0] === 'acct' && parts.length === 3 && parts[2] === 'orders') return this.accountOrders(c, acct, parts[1] as string);
    if (parts[0] === 'order' && parts.length === 2) return this.orderResource(c, v, acct, parts[1] as string);
    if (parts[0] === 'order' && parts.length === 3 && parts[2] === 'finalize') return this.finalize(c, v, acct, parts[1] as string);
    if (parts[0] === 'authz' && parts.length === 2) return this.authzResource(c, v, acct, parts[1] as string);
    if (parts[0] === 'chall' && parts.length === 3) return this.challenge(c, v, acct, parts[1] as string, parts[2] as string);
    if (parts[0] === 'cert' && parts.length === 2) return this.certificate(c, v, acct, parts[1] as string);
    throw new AcmeProblem('malformed', 'no such resource', { status: 404 });
  }

  // ---- accounts ---------------------------------------------------------------------------

  private accountJson(a: AccountRecord): Record<string, unknown> {
    return { status: a.status, contact: a.contact, orders: this.url(`acct/${a.id}/orders`) };
  }

  private checkContact(raw: unknown): string[] {
    if (raw === undefined) return [];
    if (!Array.isArray(raw) || raw.length > MAX_CONTACTS) throw new AcmeProblem('malformed', `contact is a list of at most ${MAX_CONTACTS} URLs`);
    return raw.map((c) => {
      if (typeof c !== 'string' || !/^mailto:[^\s,;<>@]+@[a-z0-9.-]+$/i.test(c)) throw new AcmeProblem('unsupportedContact', 'only mailto: contacts with one address are supported');
      return c;
    });
  }

  private async newAccount(c: Ctx, v: Verified): Promise<void> {
    const p = v.payload === '' ? {} : v.payload;
    const tp = await thumbprint(v.jwk);
    const existing = await this.o.store.accountByThumbprint(tp);
    if (existing) return this.send(c, 200, this.accountJson(existing), { location: this.url(`acct/${existing.id}`) });
    if (p.onlyReturnExisting === true) throw new AcmeProblem('accountDoesNotExist', 'no account exists for this key');
    this.policy.checkAccountIp(c.peer);
    const contact = this.checkContact(p.contact);
    let eabKid: string | null = null;
    if (this.policy.eabRequired) eabKid = await this.policy.checkEab(p.externalAccountBinding, v.jwk, this.url('new-account'));
    const rec: AccountRecord = { id: id(), status: 'valid', jwk: v.jwk as Record<string, unknown>, thumbprint: tp, contact, eab_kid: eabKid, created_at: this.now() };
    const { account, created } = await this.o.store.createAccount(rec);
    if (created) {
      this.o.metrics.acmeAccounts.inc();
      this.o.log.info({ event: 'acme_account_created', account: account.id, client_ip: c.peer, eab_kid: eabKid }, 'ACME account created');
    }
    return this.send(c, created ? 201 : 200, this.accountJson(account), { location: this.url(`acct/${account.id}`) });
  }

  private async accountResource(c: Ctx, v: Verified, acct: AccountRecord, acctId: string): Promise<void> {
    if (acctId !== acct.id) throw new AcmeProblem('unauthorized', 'this is not your account');
    if (v.payload === '') return this.send(c, 200, this.accountJson(acct));
    let next = acct;
    if (v.payload.contact !== undefined) next = (await this.o.store.updateAccount(acct.id, { contact: this.checkContact(v.payload.contact) })) ?? next;
    if (v.payload.status !== undefined) {
      if (v.payload.status !== 'deactivated') throw new AcmeProblem('malformed', 'an account may only be changed to deactivated');
      next = (await this.o.store.updateAccount(acct.id, { status: 'deactivated' })) ?? next;
      this.o.log.info({ event: 'acme_account_deactivated', account: acct.id }, 'ACME account deactivated');
    }
    return this.send(c, 200, this.accountJson(next));
  }

  private async accountOrders(c: Ctx, acct: AccountRecord, acctId: string): Promise<void> {
    if (acctId !== acct.id) throw new AcmeProblem('unauthorized', 'this is not your account');
    const orders = await this.o.store.ordersOf(acct.id, 1000);
    return this.send(c, 200, { orders: orders.map((o) => this.url(`order/${o.id}`)) });
  }

  private async keyChange(c: Ctx, v: Verified, acct: AccountRecord): Promise<void> {
    if (v.payload === '') throw new AcmeProblem('malformed', 'key-change needs an inner JWS');
    // The inner JWS (RFC 8555 §7.3.5): signed by the new key, same url, no nonce.
    const { jws, header } = parseJws(Buffer.from(JSON.stringify(v.payload)), v.url, false);
    if (header.nonce !== undefined) throw new AcmeProblem('malformed', 'the inner JWS must not carry a nonce');
    if (header.jwk === undefined || header.kid !== undefined) throw new AcmeProblem('malformed', 'the inner JWS must carry the new key as jwk');
    const newJwk = checkJwk(header.jwk, header.alg as string);
    const inner = await verifyJws(jws, newJwk, header.alg as string);
    if (inner === '' || inner.account !== this.url(`acct/${acct.id}`)) throw new AcmeProblem('malformed', 'the inner payload must name this account');
    let oldTp: string;
    try {
      oldTp = await thumbprint(checkJwk(inner.oldKey, (inner.oldKey as JWK | undefined)?.kty === 'RSA' ? 'RS256' : (inner.oldKey as JWK | undefined)?.crv === 'P-384' ? 'ES384' : (inner.oldKey as JWK | undefined)?.kty === 'OKP' ? 'EdDSA' : 'ES256'));
    } catch {
      throw new AcmeProblem('malformed', 'oldKey is not a public key');
    }
    if (oldTp !== acct.thumbprint) throw new AcmeProblem('unauthorized', 'oldKey is not the account key');
    const newTp = await thumbprint(newJwk);
    const r = await this.o.store.changeKey(acct.id, acct.thumbprint, newJwk as Record<string, unknown>, newTp);
    if (r === 'key_in_use') {
      const other = await this.o.store.accountByThumbprint(newTp);
      throw new AcmeProblem('malformed', 'another account uses the new key', { status: 409, extra: other ? { account: this.url(`acct/${other.id}`) } : {} });
    }
    if (r === 'changed') throw new AcmeProblem('unauthorized', 'the account key changed meanwhile');
    this.o.log.info({ event: 'acme_account_key_changed', account: acct.id }, 'ACME account key rolled over');
    return this.send(c, 200, this.accountJson({ ...acct, jwk: newJwk as Record<string, unknown>, thumbprint: newTp }));
  }

  // ---- orders and authorizations ------------------------------------------------------------

  private orderJson(o: OrderRecord): Record<string, unknown> {
    return {
      status: o.status,
      expires: iso(o.expires),
      identifiers: o.identifiers,
      ...(o.not_after !== null ? { notAfter: iso(o.not_after) } : {}),
      authorizations: o.authz_ids.map((a) => this.url(`authz/${a}`)),
      finalize: this.url(`order/${o.id}/finalize`),
      ...(o.cert_serial !== null ? { certificate: this.url(`cert/${o.cert_serial}`) } : {}),
      ...(o.error !== null ? { error: { type: `urn:ietf:params:acme:error:${o.error.type}`, detail: o.error.detail } } : {}),
    };
  }

  private retry(): Record<string, string> {
    return { 'retry-after': String(Math.ceil(this.o.config.retry_after / 1000)) };
  }

  private async newOrder(c: Ctx, v: Verified, acct: AccountRecord): Promise<void> {
    if (v.payload === '') throw new AcmeProblem('malformed', 'newOrder needs a payload');
    const raw = v.payload.identifiers;
    if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_IDENTIFIERS) throw new AcmeProblem('malformed', `identifiers is a list of 1-${MAX_IDENTIFIERS} identifiers`);
    const seen = new Map<string, Identifier>();
    const refused: AcmeProblem[] = [];
    const subproblems: Array<Record<string, unknown>> = [];
    for (const r of raw) {
      try {
        const i = this.policy.checkIdentifier(r);
        seen.set(`${i.type}:${i.value}`, i);
      } catch (err) {
        if (!(err instanceof AcmeProblem)) throw err;
        refused.push(err);
        subproblems.push({ type: `urn:ietf:params:acme:error:${err.type}`, detail: err.detail, identifier: r });
      }
    }
    const top = refused[0];
    if (top !== undefined) {
      // One problem for the request, with a subproblem per refused identifier (RFC 8555 §6.7.1).
      throw new AcmeProblem(top.type, refused.length === 1 ? top.detail : `${refused.length} identifiers are refused`, { extra: { subproblems } });
    }
    if (v.payload.notBefore !== undefined) throw new AcmeProblem('malformed', 'notBefore is not supported');
    const now = this.now();
    let notAfter: number | null = null;
    if (v.payload.notAfter !== undefined) {
      const t = typeof v.payload.notAfter === 'string' ? Date.parse(v.payload.notAfter) : NaN;
      if (!(t > now) || t > now + this.o.config.max_lifetime) throw new AcmeProblem('malformed', `notAfter must be in the future and at most ${Math.floor(this.o.config.max_lifetime / 1000)}s away`);
      notAfter = t;
    }
    const limits = this.o.config.limits;
    if ((await this.o.store.countOpenOrders(acct.id, now)) >= limits.pending_orders) throw new AcmeProblem('rateLimited', `at most ${limits.pending_orders} open orders per account`, { extra: {} });
    const idents = [...seen.values()];
    const authzIds: string[] = [];
    const fresh: AuthzRecord[] = [];
    for (const i of idents) {
      const reuse = this.o.config.authorization_reuse > 0 ? await this.o.store.validAuthzFor(acct.id, i, now) : null;
      const validated = reuse?.challenges.find((ch) => ch.status === 'valid')?.validated ?? null;
      if (reuse && validated !== null && validated > now - this.o.config.authorization_reuse) {
        authzIds.push(reuse.id);
        continue;
      }
      const a: AuthzRecord = {
        id: id(),
        account_id: acct.id,
        identifier: i,
        status: 'pending',
        expires: now + this.o.config.order_lifetime,
        challenges: this.o.config.challenges.types.map((type) => ({ type, token: randomBytes(32).toString('base64url'), status: 'pending', validated: null, error: null })),
      };
      fresh.push(a);
      authzIds.push(a.id);
    }
    if (fresh.length > 0 && (await this.o.store.countPendingAuthzs(acct.id, now)) + fresh.length > limits.pending_authorizations) {
      throw new AcmeProblem('rateLimited', `at most ${limits.pending_authorizations} pending authorizations per account`);
    }
    const order: OrderRecord = {
      id: id(),
      account_id: acct.id,
      status: fresh.length === 0 ? 'ready' : 'pending',
      expires: now + this.o.config.order_lifetime,
      identifiers: idents,
      authz_ids: authzIds,
      not_after: notAfter,
      cert_serial: null,
      error: null,
      created_at: now,
    };
    await this.o.store.createOrder(order, fresh);
    this.o.metrics.acmeServerOrders.inc();
    return this.send(c, 201, this.orderJson(order), { location: this.url(`order/${order.id}`), ...(order.status === 'pending' ? this.retry() : {}) });
  }

  /** An order's status follows its authorizations and its expiry (RFC 8555 §7.1.6). */
  private async refreshOrder(o: OrderRecord): Promise<OrderRecord> {
    const now = this.now();
    let next: OrderRecord | null = null;
    if ((o.status === 'pending' || o.status === 'ready') && o.expires <= now) next = { ...o, status: 'invalid', error: { type: 'malformed', detail: 'the order expired' } };
    else if (o.status === 'pending') {
      const authzs = await Promise.all(o.authz_ids.map((a) => this.o.store.authz(a)));
      if (authzs.some((a) => !a || a.status !== 'valid' && a.status !== 'pending' || a.expires <= now)) {
        const bad = authzs.find((a) => a && a.status === 'invalid');
        const err = bad?.challenges.find((ch) => ch.error)?.error ?? null;
        next = { ...o, status: 'invalid', error: err ?? { type: 'unauthorized', detail: 'an authorization is no longer valid' } };
      } else if (authzs.every((a) => a?.status === 'valid')) next = { ...o, status: 'ready' };
    }
    if (next === null) return o;
    if (await this.o.store.updateOrder(next, o.status)) return next;
    return (await this.o.store.order(o.id)) ?? o;
  }

  private async ownOrder(acct: AccountRecord, orderId: string): Promise<OrderRecord> {
    const o = await this.o.store.order(orderId);
    if (!o) throw new AcmeProblem('malformed', 'no such order', { status: 404 });
    if (o.account_id !== acct.id) throw new AcmeProblem('unauthorized', 'this order belongs to another account');
    return this.refreshOrder(o);
  }

  private async orderResource(c: Ctx, v: Verified, acct: AccountRecord, orderId: string): Promise<void> {
    if (v.payload !== '') throw new AcmeProblem('malformed', 'orders are read with POST-as-GET');
    const o = await this.ownOrder(acct, orderId);
    return this.send(c, 200, this.orderJson(o), o.status === 'pending' || o.status === 'processing' ? this.retry() : {});
  }

  private authzJson(a: AuthzRecord): Record<string, unknown> {
    return {
      identifier: a.identifier,
      status: a.status === 'pending' && a.expires <= this.now() ? 'expired' : a.status,
      expires: iso(a.expires),
      challenges: a.challenges.map((ch) => this.challengeJson(a, ch)),
    };
  }

  private challengeJson(a: AuthzRecord, ch: ChallengeRecord): Record<string, unknown> {
    return {
      type: ch.type,
      url: this.url(`chall/${a.id}/${ch.type}`),
      token: ch.token,
      status: ch.status,
      ...(ch.validated !== null ? { validated: iso(ch.validated) } : {}),
      ...(ch.error !== null ? { error: { type: `urn:ietf:params:acme:error:${ch.error.type}`, detail: ch.error.detail } } : {}),
    };
  }

  private async ownAuthz(acct: AccountRecord, authzId: string): Promise<AuthzRecord> {
    const a = await this.o.store.authz(authzId);
    if (!a) throw new AcmeProblem('malformed', 'no such authorization', { status: 404 });
    if (a.account_id !== acct.id) throw new AcmeProblem('unauthorized', 'this authorization belongs to another account');
    return a;
  }

  private async authzResource(c: Ctx, v: Verified, acct: AccountRecord, authzId: string): Promise<void> {
    let a = await this.ownAuthz(acct, authzId);
    if (v.payload !== '') {
      if (v.payload.status !== 'deactivated') throw new AcmeProblem('malformed', 'an authorization may only be changed to deactivated');
      if (a.status !== 'pending' && a.status !== 'valid') throw new AcmeProblem('malformed', `the authorization is ${a.status}`);
      const next: AuthzRecord = { ...a, status: 'deactivated' };
      if (!(await this.o.store.updateAuthz(next, a.status))) throw new AcmeProblem('malformed', 'the authorization changed meanwhile; retry');
      a = next;
    }
    return this.send(c, 200, this.authzJson(a), a.status === 'pending' ? this.retry() : {});
  }

  private async challenge(c: Ctx, v: Verified, acct: AccountRecord, authzId: string, type: string): Promise<void> {
    const a = await this.ownAuthz(acct, authzId);
    const ch = a.challenges.find((x) => x.type === type);
    if (!ch) throw new AcmeProblem('malformed', 'no such challenge', { status: 404 });
    const up = { link: `<${this.url(`authz/${a.id}`)}>;rel="up"` };
    if (v.payload === '' || ch.status !== 'pending' || a.status !== 'pending') {
      return this.send(c, 200, this.challengeJson(a, ch), { ...up, ...(ch.status === 'processing' ? this.retry() : {}) });
    }
    if (a.expires <= this.now()) throw new AcmeProblem('malformed', 'the authorization expired');
    const processing: AuthzRecord = { ...a, challenges: a.challenges.map((x) => (x === ch ? { ...x, status: 'processing' as const } : x)) };
    // Compare-and-set on the authorization's status: when two instances get the same response, one validates.
    if (!(await this.o.store.updateAuthz(processing, 'pending'))) {
      const cur = (await this.o.store.authz(a.id)) ?? a;
      const cc = cur.challenges.find((x) => x.type === type) ?? ch;
      return this.send(c, 200, this.challengeJson(cur, cc), up);
    }
    const keyAuthz = `${ch.token}.${await thumbprint(acct.jwk as JWK)}`;
    const job = this.runValidation(processing, ch.type, keyAuthz);
    this.pending.add(job);
    void job.finally(() => this.pending.delete(job));
    const chNow = processing.challenges.find((x) => x.type === type) as ChallengeRecord;
    return this.send(c, 200, this.challengeJson(processing, chNow), { ...up, ...this.retry() });
  }

  private async runValidation(a: AuthzRecord, type: ChallengeType, keyAuthz: string): Promise<void> {
    const ch = a.challenges.find((x) => x.type === type) as ChallengeRecord;
    let error: ProblemRecord | null = null;
    try {
      await this.validator.validate(type, a.identifier, ch.token, keyAuthz);
    } catch (err) {
      error = err instanceof AcmeProblem ? { type: err.type, detail: err.detail } : { type: 'serverInternal', detail: 'validation failed' };
    }
    const now = this.now();
    const next: AuthzRecord =
      error === null
        ? // Valid for the rest of an order's life, or the reuse window when that is longer (reuse itself checks `validated`).
          { ...a, status: 'valid', expires: now + Math.max(this.o.config.authorization_reuse, this.o.config.order_lifetime), challenges: a.challenges.map((x) => (x.type === type ? { ...x, status: 'valid' as const, validated: now } : x)) }
        : { ...a, status: 'invalid', challenges: a.challenges.map((x) => (x.type === type ? { ...x, status: 'invalid' as const, error } : x)) };
    this.o.metrics.acmeValidations.labels(type, error === null ? 'valid' : 'invalid').inc();
    this.o.log.info({ event: 'acme_challenge_validated', authz: a.id, account: a.account_id, identifier: a.identifier.value, type, result: error === null ? 'valid' : 'invalid', error: error?.detail ?? null }, 'ACME challenge validated');
    try {
      await this.o.store.updateAuthz(next, 'pending');
    } catch (err) {
      this.o.log.error({ event: 'acme_store_error', err: (err as Error).message }, 'cannot store a validation result; the authorization stays pending');
    }
  }

  // ---- finalize, certificates, revocation ---------------------------------------------------

  private async finalize(c: Ctx, v: Verified, acct: AccountRecord, orderId: string): Promise<void> {
    const o = await this.ownOrder(acct, orderId);
    if (o.status !== 'ready') throw new AcmeProblem('orderNotReady', `the order is ${o.status}`);
    if (v.payload === '') throw new AcmeProblem('malformed', 'finalize needs a csr');
    const csr = await checkCsr(v.payload.csr, o.identifiers);
    // Every authorization must still be valid at this moment (one may have been deactivated since the order became ready).
    const now = this.now();
    for (const aid of o.authz_ids) {
      const a = await this.o.store.authz(aid);
      if (!a || a.status !== 'valid' || a.account_id !== acct.id) throw new AcmeProblem('unauthorized', 'an authorization of this order is no longer valid');
    }
    const processing: OrderRecord = { ...o, status: 'processing' };
    if (!(await this.o.store.updateOrder(processing, 'ready'))) throw new AcmeProblem('orderNotReady', 'the order is being finalized already');
    let done: OrderRecord;
    try {
      const notAfter = new Date(o.not_after ?? now + this.o.config.lifetime);
      const issued = await issueFromCsr(this.o.ca, csr, o.identifiers, notAfter, this.crlUrl, new Date(now));
      await this.o.store.putCertificate({ serial: issued.serial, account_id: acct.id, order_id: o.id, chain_pem: issued.chainPem, spki_sha256: csr.spkiSha256, not_after: issued.notAfter.getTime(), revoked_at: null, revocation_reason: null });
      done = { ...processing, status: 'valid', cert_serial: issued.serial };
      await this.o.store.updateOrder(done, 'processing');
      const names = o.identifiers.map((i) => i.value);
      this.o.metrics.acmeCertificatesIssued.labels(csr.keyType).inc();
      this.o.log.info({ event: 'acme_certificate_issued', account: acct.id, order: o.id, serial: issued.serial, names, key_type: csr.keyType, not_after: issued.notAfter.toISOString(), client_ip: c.peer }, 'ACME certificate issued');
      await this.o.audit?.({ action: 'certificate_issued', serial: issued.serial, account: acct.id, names, clientIp: c.peer, path: c.path, reason: null });
    } catch (err) {
      const problem = err instanceof AcmeProblem ? err : new AcmeProblem('serverInternal', 'issuance failed');
      await this.o.store.updateOrder({ ...processing, status: 'invalid', error: { type: problem.type, detail: problem.detail } }, 'processing').catch(() => false);
      throw err;
    }
    return this.send(c, 200, this.orderJson(done), { location: this.url(`order/${o.id}`) });
  }

  private async certificate(c: Ctx, v: Verified, acct: AccountRecord, serial: string): Promise<void> {
    if (v.payload !== '') throw new AcmeProblem('malformed', 'certificates are read with POST-as-GET');
    const cert = await this.o.store.certificate(serial);
    if (!cert) throw new AcmeProblem('malformed', 'no such certificate', { status: 404 });
    if (cert.account_id !== acct.id) throw new AcmeProblem('unauthorized', 'this certificate belongs to another account');
    return this.send(c, 200, cert.chain_pem, { 'content-type': PEM_CHAIN });
  }

  private async revokeCert(c: Ctx, v: Verified): Promise<void> {
    if (v.payload === '' || typeof v.payload.certificate !== 'string' || !/^[A-Za-z0-9_-]+$/.test(v.payload.certificate)) throw new AcmeProblem('malformed', 'revokeCert needs a certificate');
    const reason = v.payload.reason ?? 0;
    if (typeof reason !== 'number' || !REVOCATION_REASONS.has(reason)) throw new AcmeProblem('badRevocationReason', 'reason must be 0, 1, 3, 4, 5 or 9');
    let leaf: NodeX509;
    try {
      leaf = new NodeX509(Buffer.from(v.payload.certificate, 'base64url'));
    } catch {
      throw new AcmeProblem('malformed', 'the certificate cannot be parsed');
    }
    const serial = leaf.serialNumber.toUpperCase();
    const rec = await this.o.store.certificate(serial);
    // The bytes must be the certificate we issued under that serial, not another with a borrowed serial.
    if (!rec || !rec.chain_pem.startsWith(leaf.toString().trim())) throw new AcmeProblem('unauthorized', 'this certificate was not issued by this server');
    if (v.account !== null) {
      if (rec.account_id !== v.account.id) throw new AcmeProblem('unauthorized', 'only the account that ordered the certificate, or its key, may revoke it');
    } else {
      const spki = createPublicKey({ key: v.jwk as unknown as import('node:crypto').JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'der' });
      if (createHash('sha256').update(spki).digest('base64url') !== rec.spki_sha256) throw new AcmeProblem('unauthorized', 'the JWS is not signed by the certificate key');
    }
    if (rec.revoked_at !== null) throw new AcmeProblem('alreadyRevoked', 'the certificate is already revoked');
    if (!(await this.o.store.revokeCertificate(serial, this.now(), reason))) throw new AcmeProblem('alreadyRevoked', 'the certificate is already revoked');
    this.crl = null;
    const by = v.account !== null ? 'account' : 'certificate_key';
    this.o.metrics.acmeCertificatesRevoked.labels(by).inc();
    const names = leaf.subjectAltName?.split(', ').map((n) => n.replace(/^(DNS|IP Address):/, '')) ?? [];
    this.o.log.info({ event: 'acme_certificate_revoked', serial, account: rec.account_id, by, reason, client_ip: c.peer }, 'ACME certificate revoked');
    await this.o.audit?.({ action: 'certificate_revoked', serial, account: rec.account_id, names, clientIp: c.peer, path: c.path, reason });
    return this.send(c, 200, null);
  }

  /**
   * The CRL, rebuilt from the store when this instance revoked something or after a
   * minute (another instance may have), so a revocation anywhere is listed within a minute.
   */
  private async serveCrl(c: Ctx): Promise<void> {
    const now = this.now();
    const maxAge = Math.min(60_000, Math.floor(this.o.config.crl_lifetime / 2));
    if (this.crl === null || now - this.crl.at >= maxAge) {
      const revoked = await this.o.store.revokedCertificates(now);
      this.crl = { der: await buildCrl(this.o.ca, revoked, new Date(now), this.o.config.crl_lifetime, Math.floor(now / 1000)), at: now };
    }
    return this.send(c, 200, this.crl.der, { 'content-type': 'application/pkix-crl', 'cache-control': `max-age=${Math.floor(maxAge / 1000)}` }, false);
  }
}

export type { AcmeErrorType };
