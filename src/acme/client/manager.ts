/**
 * gatehouse as an ACME client (docs/acme-client.md): certificates for the site host names
 * of the listeners that have `tls.acme`, obtained from the configured CA, kept in the
 * store, served by SNI, and renewed while running.
 *
 * Lifecycle. At start the stored certificates are loaded (a restart orders nothing while
 * they are good). Ordering begins once the listeners are up (`begin`), since the CA's
 * validation connects to them. Every `tls.check_interval` each site's certificate is
 * checked: missing, not covering the site's names, or past its renewal time → order.
 *
 * Renewal time: the CA's ARI window (RFC 9773, a random time inside it) when the
 * directory offers renewalInfo and `ari` is on; otherwise two thirds into the lifetime.
 *
 * Swap without dropping anything: the new SecureContext replaces the old one in the
 * object the SNICallback reads; connections already made keep theirs until they close.
 *
 * Failure: counted (gatehouse_acme_orders_total{result="failed"} and the TLS renewal
 * failure counter), a `warn` event `acme_order_failed`, retried with exponential backoff
 * (1 s doubling up to tls.retry_max); the old certificate keeps serving until it expires
 * (the expiry gauges and GatehouseCertificateExpiring say when that nears). The first
 * success after failures logs `acme_order_recovered` at `info`.
 *
 * Several instances (store: postgres): the order runs under the store's lock; an
 * instance that finds it busy orders nothing and adopts the stored certificate when the
 * holder has saved it.
 */
// @peculiar/x509 (ours and acme-client's) needs the Reflect polyfill loaded before it.
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { resolve } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import acme from 'acme-client';
import { Agent, request } from 'undici';
import type { AcmeClientConfig, Config } from '../../config/schema.js';
import { readSecretFile } from '../../config/secrets.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { createPostgresClient, stateDir } from '../../stores/postgres-client.js';
import { ariCertId, ariRetryAfter, parseRenewalInfo, pickRenewalTime } from './ari.js';
import { createFileAcmeStore } from './file-store.js';
import { Http01Responder } from './http-01.js';
import { acmeConfigOf, acmeHostnames } from './identifiers.js';
import { generateKey, orderCertificate, renewalInfoUrl, type OrderContext } from './order.js';
import { createPostgresAcmeStore } from './postgres-store.js';
import type { AcmeStore, StoredCertificate } from './store.js';
import { TlsAlpnResponder } from './tls-alpn-01.js';

/** A certificate the manager serves (the shape tls.ts reads). */
export interface AcmeCert {
  readonly name: string;
  readonly names: readonly string[];
  context: SecureContext;
  chainPem: string;
  keyPem: string;
  serial: string;
  notBefore: number;
  notAfter: number;
  leaf: X509Certificate;
  /** When to order the next one (ARI or 2/3 of the lifetime). */
  renewAt: number;
  /** ARI: when to ask the CA again (0: not asked yet). */
  ariNextFetch: number;
}

interface SiteState {
  readonly siteId: string;
  readonly name: string;
  names: string[];
  cert: AcmeCert | null;
  failures: number;
  nextAttempt: number;
  busy: boolean;
}

export interface AcmeManagerOptions {
  readonly config: Config;
  readonly dir: string;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly now?: () => number;
  /** Called after a certificate was swapped in (the listeners' no-SNI defaults follow it). */
  readonly onChange: () => void;
  /** Tests: the random draw inside an ARI window. */
  readonly random?: () => number;
}

let interceptorInstalled = false;

/**
 * acme-client's response interceptor reads `error.response.config` after its retries are
 * spent, so a connection failure (the CA down) surfaces as a TypeError with no cause. This
 * one runs first and turns it into an error that names the failure and the URL.
 */
function installNetworkErrorInterceptor(): void {
  if (interceptorInstalled) return;
  interceptorInstalled = true;
  const m = acme.axios.interceptors.response as unknown as { use(ok: null, fail: (e: unknown) => unknown): number; handlers: unknown[] };
  m.use(null, (e: unknown) => {
    const err = e as { response?: unknown; code?: string; message?: string; config?: { url?: string } };
    if (err.response !== undefined) return Promise.reject(e);
    return Promise.reject(new Error(`cannot reach the ACME CA (${err.code ?? err.message ?? 'network error'}) at ${err.config?.url ?? '?'}`));
  });
  m.handlers.unshift(m.handlers.pop());
}

/** The exponential backoff of a failing order: 1 s, 2 s, 4 s, ... up to `maxMs`. */
export function orderBackoff(attempt: number, maxMs: number): number {
  return Math.min(maxMs, 1000 * 2 ** Math.min(30, Math.max(0, attempt - 1)));
}

/** Two thirds into the lifetime. */
export function lifetimeRenewalTime(notBefore: number, notAfter: number): number {
  return notBefore + ((notAfter - notBefore) * 2) / 3;
}


function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join(',') === [...b].sort().join(',');
}

export class AcmeManager {
  readonly http01 = new Http01Responder();
  readonly tlsAlpn: TlsAlpnResponder;
  private config: Config;
  private readonly acmeConfig: AcmeClientConfig;
  private readonly dir: string;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly onChange: () => void;
  private readonly sites = new Map<string, SiteState>();
  private exact = new Map<string, AcmeCert>();
  private store: AcmeStore | null = null;
  private ctx: OrderContext | null = null;
  /** The directory's renewalInfo URL; null: the CA offers none; undefined: not asked yet. */
  private ariUrl: string | null | undefined = undefined;
  private ariAgent: Agent | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;

  constructor(opts: AcmeManagerOptions) {
    const a = acmeConfigOf(opts.config);
    if (!a) throw new Error('no listener has tls.acme');
    this.config = opts.config;
    this.acmeConfig = a;
    this.dir = opts.dir;
    this.metrics = opts.metrics;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.onChange = opts.onChange;
    this.tlsAlpn = new TlsAlpnResponder(Math.min(opts.config.http.header_timeout, 120_000));
  }

  /** Opens the store, the account key, and the certificates kept from an earlier run. */
  async start(): Promise<void> {
    const a = this.acmeConfig;
    const ca = a.ca_root !== undefined ? readFileSync(resolve(this.dir, a.ca_root), 'utf8') : undefined;
    // acme-client sends every request through its one axios instance: the directory's trust
    // (a private CA's root, or the system roots) and bounds are set on it. Its own retries
    // are off: a failed order is retried by this manager's backoff, counted and logged.
    acme.axios.defaults.httpsAgent = new HttpsAgent({ ...(ca ? { ca } : {}), keepAlive: false });
    acme.axios.defaults.timeout = 30_000;
    acme.axios.defaults.maxContentLength = 1 << 20;
    (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings.retryMaxAttempts = 0;
    installNetworkErrorInterceptor();
    this.ariAgent = new Agent({ connect: { ...(ca ? { ca } : {}), timeout: 10_000 }, headersTimeout: 10_000, bodyTimeout: 10_000 });
    this.store =
      a.store === 'postgres' && this.config.state.postgres
        ? createPostgresAcmeStore(createPostgresClient(this.config.state.postgres, this.dir, { max: 2, ca: this.config.ca }), this.config.state.postgres.schema, a.directory, true)
        : createFileAcmeStore(stateDir(this.config.state.dir, this.dir), a.directory);
    await this.store.init();
    const accountKeyPem = (await this.store.loadAccountKey()) ?? (await this.store.saveAccountKey(generateKey(a.key_type === 'rsa-2048' ? 'rsa-2048' : 'ecdsa-p256')));
    this.ctx = {
      config: a,
      accountKeyPem,
      eabHmacKey: a.eab ? readSecretFile(resolve(this.dir, a.eab.hmac_key_file)).trim() : null,
      http01: this.http01,
      tlsAlpn: this.tlsAlpn,
      store: this.store,
    };
    const store = this.store;
    if (store.shared) this.http01.remote = (token) => store.lookupChallenge(token);
    this.syncSites();
    for (const s of this.sites.values()) await this.adoptStored(s, 'start');
    this.reindex();
  }

  /** Starts ordering and the renewal checks (the listeners are up: the CA can validate). */
  begin(): void {
    if (this.closed || this.timer) return;
    this.timer = setInterval(() => void this.check(), this.config.tls.check_interval);
    this.timer.unref();
    void this.check();
  }

  /** After a reload: sites added, removed, or with other host names. */
  update(config: Config): void {
    this.config = config;
    this.syncSites();
    this.reindex();
    this.onChange();
    if (this.timer) void this.check();
  }

  /**
   * One pass: every certificate that is missing, does not cover its site's names, or is
   * due gets an order (one pass at a time; tests await it).
   */
  check(): Promise<void> {
    if (this.running) return this.running;
    // Cleared in a .finally (always asynchronous): a pass that awaited nothing cannot clear it before it is set.
    const p: Promise<void> = this.pass().finally(() => {
      if (this.running === p) this.running = null;
    });
    this.running = p;
    return p;
  }

  private async pass(): Promise<void> {
    for (const s of this.sites.values()) {
      if (this.closed) return;
      this.observe(s);
      if (s.names.length === 0 || this.now() < s.nextAttempt) continue;
      if (s.cert && this.acmeConfig.ari) await this.refreshAri(s.cert);
      if (s.cert && sameNames(s.cert.names, s.names) && this.now() < s.cert.renewAt) continue;
      await this.obtain(s);
    }
  }

  /** The certificate for an SNI name, or null. */
  lookup(servername: string): AcmeCert | null {
    return this.exact.get(servername) ?? null;
  }

  /** The certificate for clients without SNI: the first site's. */
  defaultCert(): AcmeCert | null {
    const first = this.config.sites[0];
    return first ? (this.sites.get(first.id)?.cert ?? null) : null;
  }

  certificates(): Array<{ name: string; serial: string; not_after: string; renew_at: string | null; failed_attempts: number; names: string[] }> {
    const out = [];
    for (const s of this.sites.values()) {
      if (!s.cert) continue;
      out.push({ name: s.name, serial: s.cert.serial, not_after: new Date(s.cert.notAfter).toISOString(), renew_at: new Date(s.cert.renewAt).toISOString(), failed_attempts: s.failures, names: [...s.cert.names] });
    }
    return out;
  }

  /** Serial of the certificate served for `acme/<site id>` (tests, the admin API). */
  currentSerial(name: string): string | null {
    for (const s of this.sites.values()) if (s.name === name) return s.cert?.serial ?? null;
    return null;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
    this.tlsAlpn.close();
    await this.ariAgent?.close().catch(() => undefined);
    await this.store?.close().catch(() => undefined);
  }

  private syncSites(): void {
    const seen = new Set<string>();
    for (const site of this.config.sites) {
      seen.add(site.id);
      const names = acmeHostnames(site.hosts);
      const s = this.sites.get(site.id);
      if (s) s.names = names;
      else this.sites.set(site.id, { siteId: site.id, name: `acme/${site.id}`, names, cert: null, failures: 0, nextAttempt: 0, busy: false });
    }
    for (const [id, s] of this.sites) {
      if (seen.has(id)) continue;
      this.sites.delete(id);
      this.metrics.tlsCertExpiry.remove(s.name);
      this.metrics.tlsCertExpiring.remove(s.name);
    }
  }

  private reindex(): void {
    const exact = new Map<string, AcmeCert>();
    for (const s of this.sites.values()) {
      if (!s.cert) continue;
      // A name the certificate does not cover (hosts changed at reload) fails the handshake until the new one comes.
      for (const n of s.names) if (s.cert.names.includes(n)) exact.set(n, s.cert);
    }
    this.exact = exact;
  }

  /** A stored pair, checked: it loads as a key pair, has not expired, and names what the site serves. */
  private toCert(s: SiteState, stored: StoredCertificate): AcmeCert | null {
    try {
      const context = createSecureContext({ cert: stored.chainPem, key: stored.keyPem });
      const leaf = new X509Certificate(stored.chainPem);
      const notBefore = Date.parse(leaf.validFrom);
      const notAfter = Date.parse(leaf.validTo);
      if (notAfter <= this.now()) return null;
      const names = (leaf.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4).toLowerCase());
      return { name: s.name, names, context, chainPem: stored.chainPem, keyPem: stored.keyPem, serial: leaf.serialNumber.toUpperCase(), notBefore, notAfter, leaf, renewAt: lifetimeRenewalTime(notBefore, notAfter), ariNextFetch: 0 };
    } catch (err) {
      this.log.warn({ event: 'acme_stored_certificate_unusable', name: s.name, err: (err as Error).message }, 'a stored ACME certificate does not load; a new one is ordered');
      return null;
    }
  }

  /** Takes the stored certificate when it is newer than the one served; true when it was taken. */
  private async adoptStored(s: SiteState, why: 'start' | 'peer'): Promise<boolean> {
    const stored = await (this.store as AcmeStore).load(s.siteId);
    if (!stored) return false;
    const c = this.toCert(s, stored);
    if (!c || !sameNames(c.names, s.names) || (s.cert && c.notAfter <= s.cert.notAfter)) return false;
    this.swapIn(s, c);
    this.log.info({ event: 'acme_certificate_loaded', name: s.name, serial: c.serial, not_after: new Date(c.notAfter).toISOString(), source: why === 'start' ? 'store' : 'another_instance' }, 'ACME certificate taken from the store');
    return true;
  }

  private swapIn(s: SiteState, c: AcmeCert): void {
    s.cert = c;
    this.reindex();
    this.observe(s);
    this.onChange();
  }

  private async obtain(s: SiteState): Promise<void> {
    if (s.busy) return;
    s.busy = true;
    const renewing = s.cert !== null;
    try {
      const result = await (this.store as AcmeStore).withOrderLock(s.siteId, async () => {
        // Another instance may have renewed while we waited for the lock.
        if (await this.adoptStored(s, 'peer')) {
          if (s.cert && this.now() < s.cert.renewAt) return 'adopted' as const;
        }
        const replaces = s.cert && this.ariUrl ? ariCertId(s.cert.chainPem) : null;
        const issued = await this.withTimeout(orderCertificate(this.ctx as OrderContext, s.names, replaces));
        await (this.store as AcmeStore).save(s.siteId, issued);
        return issued;
      });
      if (result === 'busy') {
        // Someone else is ordering this certificate: not a failure; its result is picked up next pass.
        await this.adoptStored(s, 'peer');
        return;
      }
      if (result === 'adopted') return this.recovered(s);
      const c = this.toCert(s, result);
      if (!c) throw new Error('the CA returned a certificate that does not load with its key or has expired');
      this.swapIn(s, c);
      this.metrics.acmeOrders.labels(s.name, 'issued').inc();
      if (renewing) this.metrics.tlsRenewals.labels(s.name).inc();
      this.log.info(
        { event: renewing ? 'acme_certificate_renewed' : 'acme_certificate_obtained', name: s.name, serial: c.serial, names: c.names, not_after: new Date(c.notAfter).toISOString() },
        renewing ? 'ACME certificate renewed; new handshakes use it' : 'ACME certificate obtained',
      );
      this.recovered(s);
    } catch (err) {
      s.failures++;
      const retry = orderBackoff(s.failures, this.config.tls.retry_max);
      s.nextAttempt = this.now() + retry;
      this.metrics.acmeOrders.labels(s.name, 'failed').inc();
      this.metrics.tlsRenewalFailures.labels(s.name).inc();
      this.observe(s);
      this.log.warn(
        {
          event: 'acme_order_failed',
          name: s.name,
          attempt: s.failures,
          retry_in_ms: retry,
          not_after: s.cert ? new Date(s.cert.notAfter).toISOString() : null,
          err: (err as Error).message,
        },
        s.cert ? 'ACME renewal failed; the current certificate keeps serving, retrying' : 'ACME order failed; the names have no certificate yet, retrying',
      );
    } finally {
      s.busy = false;
    }
  }

  private recovered(s: SiteState): void {
    if (s.failures > 0) this.log.info({ event: 'acme_order_recovered', name: s.name, failed_attempts: s.failures }, 'ACME ordering works again');
    s.failures = 0;
    s.nextAttempt = 0;
  }

  private withTimeout<T>(p: Promise<T>): Promise<T> {
    const ms = this.acmeConfig.order_timeout;
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, fail) => {
      t = setTimeout(() => fail(new Error(`the order took longer than order_timeout (${ms} ms)`)), ms);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(t));
  }

  /** ARI: asks the CA when to renew (when it is time to ask again); failures keep the schedule in force. */
  private async refreshAri(c: AcmeCert): Promise<void> {
    if (this.now() < c.ariNextFetch) return;
    if (this.ariUrl === undefined) {
      try {
        this.ariUrl = await renewalInfoUrl(this.ctx as OrderContext);
      } catch {
        return; // the directory is unreachable: ask again next pass
      }
    }
    const id = this.ariUrl ? ariCertId(c.chainPem) : null;
    if (!this.ariUrl || !id) {
      c.ariNextFetch = Number.POSITIVE_INFINITY; // the CA offers no ARI: the lifetime rule stays
      return;
    }
    try {
      const res = await request(`${this.ariUrl.replace(/\/$/, '')}/${id}`, { dispatcher: this.ariAgent ?? undefined });
      const text = await res.body.text();
      const retryAfter = res.headers['retry-after'];
      c.ariNextFetch = this.now() + ariRetryAfter(typeof retryAfter === 'string' ? retryAfter : null, this.now());
      if (res.statusCode !== 200 || text.length > 65_536) throw new Error(`renewalInfo answered ${res.statusCode}`);
      const w = parseRenewalInfo(JSON.parse(text));
      if (!w) throw new Error('renewalInfo has no suggestedWindow');
      // Keep the time already drawn while it still falls in the window: asking again must not re-roll it.
      if (c.renewAt < w.start || c.renewAt > w.end) c.renewAt = pickRenewalTime(w, this.random());
    } catch (err) {
      this.log.debug({ event: 'acme_renewal_info_failed', name: c.name, err: (err as Error).message }, 'ARI renewalInfo not available; the current renewal time stays');
    }
  }

  private observe(s: SiteState): void {
    if (!s.cert) return;
    this.metrics.tlsCertExpiry.labels(s.name).set(s.cert.notAfter / 1000);
    this.metrics.tlsCertExpiring.labels(s.name).set(s.cert.notAfter - this.now() < this.config.tls.expiry_warning ? 1 : 0);
    this.metrics.acmeRenewAt.labels(s.name).set(s.cert.renewAt / 1000);
  }
}
