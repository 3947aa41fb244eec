/**
 * TLS for the gateway: the certificates its HTTPS listeners present (from files, or
 * issued by the internal CA for the site host names), their renewal while running, and
 * the trust material for https:// upstreams (docs/tls.md).
 *
 * Renewal model: an internal certificate is renewed at two thirds of its lifetime, in
 * this process. The new SecureContext replaces the old one in the map the SNICallback
 * reads (and, for a listener's default_sni, in the server's default context); connections
 * already established keep the context they were made with, so nothing is dropped. A
 * failed renewal is logged, counted, and retried with exponential backoff (1 s doubling
 * up to tls.retry_max); the expiring gauge turns 1 within tls.expiry_warning of the end.
 * Certificate files are checked every tls.check_interval (mtime and size) and reloaded
 * when they change; a pair that does not load keeps the old one serving.
 *
 * An SNI name that no certificate covers fails the handshake before any certificate is
 * sent: the gateway never shows a certificate for a name it does not serve. Neither does
 * a handshake without SNI, unless the listener names a `default_sni`.
 *
 * The admin listener (admin.tls) is served by the same machinery with one certificate
 * (files, or `admin` from the internal CA for its listen host and admin.tls.names) and,
 * with admin.client_certificates, the trust pool its clients' certificates must chain
 * to: ca_file (re-read when it changes) or the internal root. Its context is replaced in
 * place when either changes, like a listener's default context.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { createSecureContext, type ConnectionOptions, type SecureContext, type TLSSocket, type TlsOptions } from 'node:tls';
import { acmeConfigOf } from '../acme/client/identifiers.js';
import type { AcmeManager } from '../acme/client/manager.js';
import type { Config, ListenerConfig, UpstreamConfig } from '../config/schema.js';
import { readSecretFile } from '../config/secrets.js';
import { normalizeHost } from '../config/validate.js';
import type { Logger } from '../observability/logger.js';
import type { DependencyStates } from '../observability/dependency-state.js';
import type { Metrics } from '../observability/metrics.js';
import { issueCertificate, loadCa, type Ca, type IssueOptions, type Issued } from '../pki/ca.js';
import { trustPool, type TrustPool } from '../pki/trust-pool.js';
import type { UpstreamTlsMaterial, UpstreamTlsProvider } from '../stages/proxy/pools.js';
import { isLoopbackHost, isWildcardHost, parseListenAddress } from './address.js';

/**
 * Forward-secret AEAD suites only: TLS 1.3's three, and ECDHE with AES-GCM or
 * ChaCha20-Poly1305 for TLS 1.2 (ECDSA first: the internal CA issues P-256 keys).
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export const TLS_BASE_OPTIONS = {
  minVersion: 'TLSv1.2',
  ciphers: TLS_CIPHERS,
  honorCipherOrder: true,
  ecdhCurve: 'X25519:prime256v1:secp384r1',
} as const satisfies TlsOptions;

const UNKNOWN_SNI = 'unknown server name';
/** The serial of the certificate a server currently shows clients without SNI. */
const kDefault = Symbol('gatehouse.tls.default');
/** setTimeout's limit; longer waits are re-armed when they fire. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The exponential backoff of a failing renewal: 1 s, 2 s, 4 s, ... up to `maxMs`. */
export function renewalBackoff(attempt: number, maxMs: number): number {
  return Math.min(maxMs, 1000 * 2 ** Math.min(30, Math.max(0, attempt - 1)));
}

interface CertState {
  readonly name: string;
  context: SecureContext;
  chainPem: string;
  keyPem: string;
  serial: string;
  notAfter: number;
  leaf: X509Certificate;
}

interface InternalCert extends CertState {
  readonly spec: IssueOptions;
  readonly specKey: string;
  issuedAt: number;
  timer: NodeJS.Timeout | null;
  failures: number;
}

interface FileCert extends CertState {
  readonly certPath: string;
  readonly keyPath: string;
  stamp: string;
}

interface Attached {
  readonly server: HttpsServer;
  readonly listener: ListenerConfig;
}

export interface TlsManagerOptions {
  readonly config: Config;
  readonly dir: string;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Dependency states: internal-CA renewal of each certificate is `certificate:<name>` (docs/operations.md#dependency-states). */
  readonly dependencies?: DependencyStates;
  /** Tests inject a failing issuer to exercise backoff. */
  readonly issue?: (ca: Ca, opts: IssueOptions) => Promise<Issued>;
  /** Epoch-ms clock of the ACME renewal schedule (tests). */
  readonly now?: () => number;
}

function fileStamp(path: string): string {
  try {
    const st = statSync(path);
    return `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch {
    return 'missing';
  }
}

function contextFor(chainPem: string, keyPem: string): SecureContext {
  return createSecureContext({ ...TLS_BASE_OPTIONS, cert: chainPem, key: keyPem });
}

/** The certificate a site needs: its host names as DNS SANs, IP hosts as IP SANs. */
function siteSpec(site: Config['sites'][number], lifetimeMs: number): IssueOptions {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const h of site.hosts) {
    // The catch-all host names no certificate; its clients get the listener's default one.
    if (h === '*') continue;
    const host = normalizeHost(h).replace(/^\[|\]$/g, '');
    if (isIP(host)) ips.push(host);
    else dns.push(host);
  }
  const name = dns[0] ?? ips[0] ?? site.id;
  return { name, dnsNames: dns, ips, lifetimeMs, server: true, client: false };
}

/**
 * The admin listener's internal_ca certificate: admin.tls.names and the host it listens
 * on (a loopback host with every loopback name, since clients reach it as localhost,
 * 127.0.0.1 or ::1 depending on their resolver). null when none is needed.
 */
export function adminCertificateSpec(config: Config, lifetimeMs: number): IssueOptions | null {
  const a = config.admin;
  if (!a.enabled || !a.tls?.internal_ca) return null;
  const hosts = [...(a.tls.names ?? [])];
  const addr = parseListenAddress(a.listen);
  if (addr && !isWildcardHost(addr.host)) {
    hosts.push(addr.host);
    if (isLoopbackHost(addr.host)) hosts.push('localhost', '127.0.0.1', '::1');
  }
  const dns: string[] = [];
  const ips: string[] = [];
  for (const h of hosts) {
    const host = h.replace(/^\[|\]$/g, '').toLowerCase();
    const list = isIP(host) ? ips : dns;
    if (!list.includes(host)) list.push(host);
  }
  const name = dns[0] ?? ips[0];
  // A wildcard address without names is a config error (validate-tls.ts).
  if (name === undefined) return null;
  return { name, dnsNames: dns, ips, lifetimeMs, server: true, client: false };
}

/** One TCP connection's id while it is open: the raw socket and its TLSSocket share it. */
function connectionKey(s: Socket): string | null {
  return s.remoteAddress === undefined || s.remotePort === undefined ? null : `${s.remoteAddress}|${s.remotePort}`;
}

function sanNames(leaf: X509Certificate): string[] {
  return (leaf.subjectAltName ?? '').split(', ').filter((s) => s !== '');
}

export class TlsManager implements UpstreamTlsProvider {
  private config: Config;
  private dir: string;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly issue: (ca: Ca, opts: IssueOptions) => Promise<Issued>;
  private ca: Ca | null = null;
  private caKey = '';
  private readonly siteCerts = new Map<string, InternalCert>();
  private exact = new Map<string, InternalCert>();
  private wildcard = new Map<string, InternalCert>();
  private readonly fileCerts = new Map<string, FileCert>();
  private clientCert: InternalCert | null = null;
  /** The admin listener's certificate from the internal CA (admin.tls.internal_ca). */
  private adminCert: InternalCert | null = null;
  /** The HTTPS admin server, once attached. */
  private adminServer: HttpsServer | null = null;
  /** The admin trust pool (admin.client_certificates): `key` says what it was loaded from, `version` counts loads. */
  private adminTrust: { key: string; version: number; pool: TrustPool } | null = null;
  /** What the admin server's secure context holds: the certificate chain and the trust pool version. */
  private adminApplied = { chainPem: '', trust: -1 };
  /** Open admin connections by peer address and port, with the trust-pool version their handshake used. */
  private readonly adminConnections = new Map<string, { readonly trust: number }>();
  /** Bumped whenever upstream TLS material changes (new client certificate, CA reloaded). */
  private upstreamVersion = 0;
  private readonly upstreamCache = new Map<string, UpstreamTlsMaterial>();
  private readonly attached: Attached[] = [];
  private tick: NodeJS.Timeout | null = null;
  private closed = false;
  /**
   * Certificates from an ACME CA for listeners with tls.acme (src/acme/client); made by
   * start(), which imports the client only when the config uses it (listeners, and so
   * tls.acme, change only on restart).
   */
  acme: AcmeManager | null = null;
  private readonly now: (() => number) | undefined;

  constructor(opts: TlsManagerOptions) {
    this.config = opts.config;
    this.dir = opts.dir;
    this.metrics = opts.metrics;
    this.log = opts.log;
    this.issue = opts.issue ?? issueCertificate;
    this.deps = opts.dependencies;
    this.now = opts.now;
  }
  private readonly deps: DependencyStates | undefined;

  /** Loads the CA and every certificate the config needs; throws when one cannot be had. */
  async start(): Promise<void> {
    if (acmeConfigOf(this.config)) {
      // acme-client and @peculiar/x509 (~18 MB of memory) only for a gateway that uses ACME.
      const { AcmeManager } = await import('../acme/client/manager.js');
      this.acme = new AcmeManager({ config: this.config, dir: this.dir, metrics: this.metrics, log: this.log, now: this.now, onChange: () => this.attached.forEach((a) => this.refreshDefault(a)) });
    }
    await this.loadCaIfChanged();
    for (const [certFile, keyFile] of this.certFiles()) this.loadFileCert(certFile, keyFile, true);
    await this.syncInternal(true);
    this.loadAdminTrust(true);
    await this.acme?.start();
    this.tick = setInterval(() => this.onTick(), this.config.tls.check_interval);
    this.tick.unref();
  }

  /** Options for https.createServer for one listener: protocol limits, the default certificate, the SNI lookup. */
  serverOptions(l: ListenerConfig): TlsOptions {
    const def = this.defaultCert(l);
    return {
      ...TLS_BASE_OPTIONS,
      ...(def ? { cert: def.chainPem, key: def.keyPem } : {}),
      // A client that stalls the handshake is cut off like one that stalls its headers (Node's default is 120 s).
      handshakeTimeout: Math.min(this.config.http.header_timeout, 120_000),
      SNICallback: (servername, cb) => {
        const c = this.lookup(l, servername);
        if (c) cb(null, c.context);
        else {
          this.metrics.tlsHandshakeFailures.labels('unknown_server_name').inc();
          this.log.debug({ event: 'tls_unknown_server_name', server_name: servername.slice(0, 255) }, 'TLS handshake refused: no certificate for this name');
          cb(new Error(UNKNOWN_SNI), undefined);
        }
      },
    };
  }

  attach(server: HttpsServer, l: ListenerConfig): void {
    // Before any other 'connection' listener: validation handshakes never reach the listener.
    if (l.tls?.acme?.challenge === 'tls-alpn-01') this.acme?.tlsAlpn.attach(server);
    this.attached.push({ server, listener: l });
    this.harden(server);
  }

  /**
   * What every TLS server of the gateway gets (public listeners and the admin listener):
   * handshake failures counted, and client-initiated renegotiation (TLS 1.2; 1.3 has
   * none) refused, as nginx and Go refuse it: a renegotiation costs the server a full
   * handshake per request of a client that pays almost nothing (CVE-2011-1473), and it
   * changes the session's parameters under a connection already authorized. OpenSSL
   * answers a refused renegotiation with an alert; Node then errors and closes the socket.
   */
  private harden(server: HttpsServer): void {
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      if (err.message === UNKNOWN_SNI) return; // counted in the SNICallback
      // No SNI and no default_sni: the server had no certificate to offer (defaultCert).
      const noName = typeof socket.servername !== 'string' && server !== this.adminServer;
      this.metrics.tlsHandshakeFailures.labels(noName ? 'no_server_name' : err.code?.startsWith('ERR_SSL_') ? 'protocol' : 'other').inc();
      if (noName) this.log.debug({ event: 'tls_no_server_name', remote: socket.remoteAddress }, 'TLS handshake refused: no SNI and no default_sni');
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      socket.disableRenegotiation();
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ERR_TLS_RENEGOTIATION_DISABLED') return;
        this.metrics.tlsHandshakeFailures.labels('renegotiation').inc();
        this.log.info({ event: 'tls_renegotiation_refused', remote: socket.remoteAddress }, 'client-initiated TLS renegotiation refused; connection closed');
      });
    });
  }

  /**
   * Options for the HTTPS admin server: one certificate for every name (it serves no
   * sites), and with admin.client_certificates a certificate request against the admin
   * trust pool. The handshake completes without a certificate, or with one that does not
   * verify, so probes and scrapers need none; the admin server decides per API request
   * (src/admin/client-cert.ts).
   */
  adminServerOptions(): TlsOptions {
    const cert = this.adminCertState();
    if (!cert) throw new Error('no certificate for the admin listener');
    const requestCert = this.config.admin.client_certificates !== undefined;
    // Without `ca`, node would verify client certificates against its public root store.
    if (requestCert && !this.adminTrust) throw new Error('no trust pool for admin client certificates');
    this.adminApplied = { chainPem: cert.chainPem, trust: this.adminTrust?.version ?? -1 };
    return {
      ...this.adminContextOptions(cert),
      handshakeTimeout: Math.min(this.config.http.header_timeout, 120_000),
      requestCert,
      rejectUnauthorized: false,
    };
  }

  attachAdmin(server: HttpsServer): void {
    this.adminServer = server;
    this.harden(server);
    // tls.Server makes each connection's TLSSocket, with the secure context in force, in its
    // own 'connection' listener, which runs before this one: the version recorded here is
    // the pool that connection's handshake verifies against.
    server.on('connection', (raw: Socket) => {
      const key = connectionKey(raw);
      if (key === null) return;
      const entry = { trust: this.adminApplied.trust };
      this.adminConnections.set(key, entry);
      raw.once('close', () => {
        if (this.adminConnections.get(key) === entry) this.adminConnections.delete(key);
      });
    });
  }

  /**
   * Whether an admin connection was verified against the trust pool in force now. A
   * replaced pool (reload, changed ca_file) thus applies to open keep-alive connections
   * too, not only to new handshakes.
   */
  adminTrustCurrent(socket: Socket): boolean {
    const key = connectionKey(socket);
    const entry = key === null ? undefined : this.adminConnections.get(key);
    return entry !== undefined && this.adminTrust !== null && entry.trust === this.adminTrust.version;
  }

  private adminContextOptions(cert: CertState): TlsOptions {
    return { ...TLS_BASE_OPTIONS, cert: cert.chainPem, key: cert.keyPem, ...(this.adminTrust ? { ca: [...this.adminTrust.pool.pems] } : {}) };
  }

  private adminCertState(): CertState | null {
    const t = this.config.admin.enabled ? this.config.admin.tls : undefined;
    if (!t) return null;
    if (t.internal_ca) return this.adminCert;
    return t.cert_file && t.key_file ? (this.fileCerts.get(this.fileKey(t.cert_file, t.key_file)) ?? null) : null;
  }

  /** A renewed or reloaded admin certificate, or a changed trust pool, reaches new admin connections. */
  private refreshAdmin(): void {
    const server = this.adminServer;
    const cert = this.adminCertState();
    if (!server || !cert) return;
    const trust = this.adminTrust?.version ?? -1;
    if (this.adminApplied.chainPem === cert.chainPem && this.adminApplied.trust === trust) return;
    this.adminApplied = { chainPem: cert.chainPem, trust };
    server.setSecureContext(this.adminContextOptions(cert));
  }

  /** Loads (or reloads) the admin trust pool. At start a failure throws; later it is logged and the old pool kept. */
  private loadAdminTrust(strict: boolean): void {
    const a = this.config.admin;
    const c = a.enabled && a.tls ? a.client_certificates : undefined;
    if (!c) {
      this.adminTrust = null;
      return;
    }
    const file = c.ca_file !== undefined ? resolve(this.dir, c.ca_file) : null;
    const key = file ? `file:${file}|${fileStamp(file)}` : `internal:${this.caKey}`;
    if (this.adminTrust?.key === key) return;
    try {
      if (!file && !this.ca) throw new Error('no internal CA configured');
      const pool = trustPool(file ? readFileSync(file, 'utf8') : (this.ca as Ca).rootPem);
      const replaced = this.adminTrust !== null;
      this.adminTrust = { key, version: (this.adminTrust?.version ?? 0) + 1, pool };
      if (replaced) this.log.info({ event: 'tls_admin_trust_reloaded', source: file ? c.ca_file : 'internal_ca', certificates: pool.pems.length }, 'admin client-certificate trust pool reloaded; new connections use it');
    } catch (err) {
      const source = file ? c.ca_file : 'internal_ca';
      if (strict) throw new Error(`cannot load the admin client-certificate trust pool (${source}): ${(err as Error).message}`);
      // Do not retry the same broken file on every tick; the previous pool stays in force.
      if (this.adminTrust) this.adminTrust = { ...this.adminTrust, key };
      this.log.error({ event: 'tls_admin_trust_reload_failed', source, err: (err as Error).message }, 'the admin client-certificate trust pool does not load; the previous pool stays in force');
    }
  }

  /** Certificate file pairs to serve: the listeners' and the admin listener's. */
  private certFiles(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (const l of this.config.listen) {
      if (l.tls && !l.tls.internal_ca && l.tls.cert_file && l.tls.key_file) out.push([l.tls.cert_file, l.tls.key_file]);
    }
    const t = this.config.admin.enabled ? this.config.admin.tls : undefined;
    if (t && !t.internal_ca && t.cert_file && t.key_file) out.push([t.cert_file, t.key_file]);
    return out;
  }

  /** Certificate matching an SNI name for this listener, or null (the handshake fails). */
  private lookup(l: ListenerConfig, servername: string): CertState | null {
    const name = servername.toLowerCase().replace(/\.$/, '');
    if (l.tls?.acme) return this.acme?.lookup(name) ?? null;
    if (l.tls?.internal_ca) {
      const c = this.exact.get(name);
      if (c) return c;
      const dot = name.indexOf('.');
      return dot > 0 ? (this.wildcard.get(name.slice(dot + 1)) ?? null) : null;
    }
    const f = l.tls?.cert_file && l.tls.key_file ? this.fileCerts.get(this.fileKey(l.tls.cert_file, l.tls.key_file)) : undefined;
    if (f && f.leaf.checkHost(name, { subject: 'never' }) !== undefined) return f;
    return null;
  }

  /**
   * What a client without SNI (an IP-address URL, a scanner) is shown: the certificate of
   * the listener's `default_sni`, or nothing. Without one the server has no default
   * certificate, so OpenSSL ends such a handshake with an alert before any certificate
   * is sent: a scanner probing by address learns no name served.
   */
  private defaultCert(l: ListenerConfig): CertState | null {
    return l.default_sni === undefined ? null : this.lookup(l, l.default_sni);
  }

  /** After a reload: a new CA block, new or changed sites, a newly needed client certificate. */
  async update(config: Config, dir: string): Promise<void> {
    this.config = config;
    this.dir = dir;
    try {
      if (await this.loadCaIfChanged()) {
        this.upstreamVersion++;
        this.upstreamCache.clear();
      }
      await this.syncInternal(false);
      this.loadAdminTrust(false);
      this.refreshAdmin();
      this.acme?.update(config);
    } catch (err) {
      this.log.error({ event: 'tls_update_failed', err: (err as Error).message }, 'TLS material for the new config could not be prepared; existing certificates keep serving');
    }
  }

  private async loadCaIfChanged(): Promise<boolean> {
    const c = this.config.ca;
    const key = c ? JSON.stringify([resolve(this.dir, c.dir), resolve(this.dir, c.password_file)]) : '';
    if (key === this.caKey) return false;
    this.ca = c ? await loadCa(resolve(this.dir, c.dir), readSecretFile(resolve(this.dir, c.password_file))) : null;
    this.caKey = key;
    return true;
  }

  /** Issues what is missing, drops what is no longer configured. `strict`: throw (at start) rather than log. */
  private async syncInternal(strict: boolean): Promise<void> {
    const config = this.config;
    const lifetime = config.ca?.lifetime ?? 0;
    const wantSites = config.listen.some((l) => l.tls?.internal_ca) && this.ca !== null;
    const wanted = new Map<string, IssueOptions>();
    if (wantSites) for (const s of config.sites) wanted.set(s.id, siteSpec(s, lifetime));
    for (const [id, c] of this.siteCerts) {
      const w = wanted.get(id);
      if (!w || JSON.stringify(w) !== c.specKey) {
        this.drop(c);
        this.siteCerts.delete(id);
      }
    }
    for (const [id, spec] of wanted) {
      if (this.siteCerts.has(id)) continue;
      try {
        this.siteCerts.set(id, await this.issueNew(`site/${id}`, spec));
      } catch (err) {
        if (strict) throw err;
        this.metrics.tlsRenewalFailures.labels(`site/${id}`).inc();
        this.log.error({ event: 'tls_issue_failed', name: `site/${id}`, err: (err as Error).message }, 'cannot issue a certificate for a site; its names fail the TLS handshake');
      }
    }
    this.reindex();
    const wantClient = this.ca !== null && config.sites.some((s) => s.upstream?.tls?.client_cert === 'internal');
    const clientSpec: IssueOptions = { name: 'gatehouse', lifetimeMs: lifetime, server: false, client: true };
    if (this.clientCert && (!wantClient || this.clientCert.specKey !== JSON.stringify(clientSpec))) {
      this.drop(this.clientCert);
      this.clientCert = null;
    }
    if (wantClient && !this.clientCert) {
      this.clientCert = await this.issueNew('upstream-client', clientSpec);
      this.upstreamVersion++;
    }
    const adminSpec = this.ca !== null ? adminCertificateSpec(config, lifetime) : null;
    if (this.adminCert && (!adminSpec || this.adminCert.specKey !== JSON.stringify(adminSpec))) {
      this.drop(this.adminCert);
      this.adminCert = null;
    }
    if (adminSpec && !this.adminCert) this.adminCert = await this.issueNew('admin', adminSpec);
    // Listeners created before a site certificate existed get their no-SNI default now.
    for (const a of this.attached) this.refreshDefault(a);
    this.refreshAdmin();
  }

  private reindex(): void {
    const exact = new Map<string, InternalCert>();
    const wildcard = new Map<string, InternalCert>();
    for (const s of this.config.sites) {
      const c = this.siteCerts.get(s.id);
      if (!c) continue;
      for (const h of s.hosts) {
        const host = normalizeHost(h);
        if (host.startsWith('*.')) wildcard.set(host.slice(2), c);
        else if (!isIP(host.replace(/^\[|\]$/g, ''))) exact.set(host, c);
      }
    }
    this.exact = exact;
    this.wildcard = wildcard;
  }

  private async issueNew(name: string, spec: IssueOptions): Promise<InternalCert> {
    if (!this.ca) throw new Error('no internal CA configured');
    const issued = await this.issue(this.ca, spec);
    const c: InternalCert = {
      name,
      spec,
      specKey: JSON.stringify(spec),
      context: contextFor(issued.chainPem, issued.keyPem),
      chainPem: issued.chainPem,
      keyPem: issued.keyPem,
      serial: issued.serial,
      notAfter: issued.notAfter.getTime(),
      issuedAt: issued.issuedAt.getTime(),
      leaf: new X509Certificate(issued.certPem),
      timer: null,
      failures: 0,
    };
    this.observe(c);
    this.log.info({ event: 'tls_certificate_issued', name, serial: c.serial, not_after: issued.notAfter.toISOString() }, 'certificate issued by the internal CA');
    this.scheduleRenewal(c);
    return c;
  }

  private scheduleRenewal(c: InternalCert): void {
    const renewAt = c.issuedAt + ((c.notAfter - c.issuedAt) * 2) / 3;
    this.arm(c, renewAt - Date.now());
  }

  private arm(c: InternalCert, delayMs: number): void {
    if (c.timer) clearTimeout(c.timer);
    if (this.closed) return;
    const delay = Math.max(0, delayMs);
    c.timer = setTimeout(() => {
      c.timer = null;
      if (delay > MAX_TIMER_MS) this.arm(c, delay - MAX_TIMER_MS);
      else void this.renew(c);
    }, Math.min(delay, MAX_TIMER_MS));
    c.timer.unref();
  }

  private async renew(c: InternalCert): Promise<void> {
    if (this.closed || !this.isCurrent(c)) return;
    try {
      if (!this.ca) throw new Error('no internal CA configured');
      const issued = await this.issue(this.ca, c.spec);
      if (this.closed || !this.isCurrent(c)) return;
      // Swap in place: the SNICallback reads c.context for every new handshake; connections
      // made with the previous context keep it until they close.
      c.context = contextFor(issued.chainPem, issued.keyPem);
      c.chainPem = issued.chainPem;
      c.keyPem = issued.keyPem;
      c.serial = issued.serial;
      c.notAfter = issued.notAfter.getTime();
      c.issuedAt = issued.issuedAt.getTime();
      c.leaf = new X509Certificate(issued.certPem);
      c.failures = 0;
      this.observe(c);
      this.metrics.tlsRenewals.labels(c.name).inc();
      if (c === this.clientCert) this.upstreamVersion++;
      for (const a of this.attached) this.refreshDefault(a);
      this.refreshAdmin();
      this.log.info({ event: 'tls_certificate_renewed', name: c.name, serial: c.serial, not_after: issued.notAfter.toISOString() }, 'certificate renewed');
      this.deps?.dependency(`certificate:${c.name}`, { describe: `renewal of certificate ${c.name}` }).up();
      this.scheduleRenewal(c);
    } catch (err) {
      c.failures++;
      const retry = renewalBackoff(c.failures, this.config.tls.retry_max);
      this.metrics.tlsRenewalFailures.labels(c.name).inc();
      this.observe(c);
      this.log.error(
        { event: 'tls_renewal_failed', name: c.name, attempt: c.failures, retry_in_ms: retry, not_after: new Date(c.notAfter).toISOString(), err: (err as Error).message },
        'certificate renewal failed; the current certificate keeps serving, retrying',
      );
      this.deps?.dependency(`certificate:${c.name}`, { describe: `renewal of certificate ${c.name}` }).down(err, { not_after: new Date(c.notAfter).toISOString() });
      this.arm(c, retry);
    }
  }

  private isCurrent(c: InternalCert): boolean {
    return c === this.clientCert || c === this.adminCert || this.siteCerts.get(c.name.slice('site/'.length)) === c;
  }

  private drop(c: InternalCert): void {
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    this.metrics.tlsCertExpiry.remove(c.name);
    this.metrics.tlsCertExpiring.remove(c.name);
  }

  private fileKey(certFile: string, keyFile: string): string {
    return `${resolve(this.dir, certFile)}\n${resolve(this.dir, keyFile)}`;
  }

  /** Loads (or reloads) a certificate file pair. At start a failure throws; later it is logged and the old pair kept. */
  private loadFileCert(certFile: string, keyFile: string, strict: boolean): void {
    const key = this.fileKey(certFile, keyFile);
    const certPath = resolve(this.dir, certFile);
    const keyPath = resolve(this.dir, keyFile);
    const name = `file/${certFile}`;
    const stamp = `${fileStamp(certPath)}|${fileStamp(keyPath)}`;
    const old = this.fileCerts.get(key);
    if (old && old.stamp === stamp) return;
    try {
      const chainPem = readFileSync(certPath, 'utf8');
      const keyPem = readSecretFile(keyPath);
      // createSecureContext refuses a key that does not match the certificate.
      const context = contextFor(chainPem, keyPem);
      const leaf = new X509Certificate(chainPem);
      const c: FileCert = { name, certPath, keyPath, stamp, context, chainPem, keyPem, serial: leaf.serialNumber.toUpperCase(), notAfter: Date.parse(leaf.validTo), leaf };
      this.fileCerts.set(key, c);
      this.observe(c);
      if (old) {
        this.metrics.tlsRenewals.labels(name).inc();
        for (const a of this.attached) this.refreshDefault(a);
        this.refreshAdmin();
        this.log.info({ event: 'tls_certificate_reloaded', name, serial: c.serial, not_after: leaf.validTo }, 'certificate file changed; new handshakes use it');
      }
    } catch (err) {
      if (strict) throw new Error(`cannot load ${certFile} / ${keyFile}: ${(err as Error).message}`);
      if (old) old.stamp = stamp; // do not retry the same broken files on every tick
      this.metrics.tlsRenewalFailures.labels(name).inc();
      this.log.error({ event: 'tls_certificate_reload_failed', name, err: (err as Error).message }, 'changed certificate files do not load; the previous certificate keeps serving');
    }
  }

  private refreshDefault(a: Attached): void {
    const def = this.defaultCert(a.listener);
    if (!def) return;
    const s = a.server as HttpsServer & { [kDefault]?: string };
    if (s[kDefault] === def.serial) return;
    s[kDefault] = def.serial;
    a.server.setSecureContext({ ...TLS_BASE_OPTIONS, cert: def.chainPem, key: def.keyPem });
  }

  private observe(c: CertState): void {
    this.metrics.tlsCertExpiry.labels(c.name).set(c.notAfter / 1000);
    this.metrics.tlsCertExpiring.labels(c.name).set(c.notAfter - Date.now() < this.config.tls.expiry_warning ? 1 : 0);
  }

  private onTick(): void {
    for (const [certFile, keyFile] of this.certFiles()) this.loadFileCert(certFile, keyFile, false);
    this.loadAdminTrust(false);
    this.refreshAdmin();
    for (const c of this.fileCerts.values()) this.observe(c);
    for (const c of this.siteCerts.values()) this.observe(c);
    if (this.clientCert) this.observe(this.clientCert);
    if (this.adminCert) this.observe(this.adminCert);
  }

  /** Trust material for new connections to an https:// upstream (pools.ts asks at every connect). */
  upstreamTls(u: UpstreamConfig): UpstreamTlsMaterial {
    const t = u.tls;
    const clientFiles = typeof t?.client_cert === 'object' ? t.client_cert : null;
    const caFile = t?.ca_file !== undefined ? resolve(this.dir, t.ca_file) : null;
    let stamp = `${this.upstreamVersion}`;
    // Files are stat()ed per new connection (not per request), so a replaced CA bundle or
    // client certificate reaches the next connection.
    if (caFile) stamp += `|${fileStamp(caFile)}`;
    if (clientFiles) stamp += `|${fileStamp(resolve(this.dir, clientFiles.cert_file))}|${fileStamp(resolve(this.dir, clientFiles.key_file))}`;
    const key = JSON.stringify(t ?? null);
    const cached = this.upstreamCache.get(key);
    if (cached && cached.stamp === stamp) return cached;
    const options: ConnectionOptions = { minVersion: 'TLSv1.2', rejectUnauthorized: true };
    const ca: string[] = [];
    if (caFile) ca.push(readFileSync(caFile, 'utf8'));
    // The internal root is the default pool when a CA is configured and no ca_file replaces it.
    if ((t?.internal_ca ?? caFile === null) && this.ca) ca.push(this.ca.rootPem);
    if (ca.length > 0) options.ca = ca;
    if (t?.server_name) options.servername = t.server_name;
    if (t?.client_cert === 'internal') {
      if (!this.clientCert) throw Object.assign(new Error('no internal client certificate'), { code: 'ERR_TLS_CLIENT_CERT_UNAVAILABLE' });
      options.cert = this.clientCert.chainPem;
      options.key = this.clientCert.keyPem;
    } else if (clientFiles) {
      options.cert = readFileSync(resolve(this.dir, clientFiles.cert_file), 'utf8');
      options.key = readSecretFile(resolve(this.dir, clientFiles.key_file));
    }
    const m: UpstreamTlsMaterial = { stamp, options };
    this.upstreamCache.set(key, m);
    return m;
  }

  /** What is presented now, for the admin API: no key material, only identifiers and dates. */
  certificates(): Array<{ name: string; serial: string; not_after: string; renew_at: string | null; failed_attempts: number; names: string[] }> {
    const out = [];
    const internal = [...this.siteCerts.values(), ...(this.clientCert ? [this.clientCert] : []), ...(this.adminCert ? [this.adminCert] : [])];
    for (const c of internal) {
      out.push({ name: c.name, serial: c.serial, not_after: new Date(c.notAfter).toISOString(), renew_at: new Date(c.issuedAt + ((c.notAfter - c.issuedAt) * 2) / 3).toISOString(), failed_attempts: c.failures, names: sanNames(c.leaf) });
    }
    for (const c of this.fileCerts.values()) {
      out.push({ name: c.name, serial: c.serial, not_after: new Date(c.notAfter).toISOString(), renew_at: null, failed_attempts: 0, names: sanNames(c.leaf) });
    }
    if (this.acme) out.push(...this.acme.certificates());
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Serial of the certificate currently presented for a name (tests, the admin API). */
  currentSerial(name: string): string | null {
    if (name === 'upstream-client') return this.clientCert?.serial ?? null;
    if (name === 'admin') return this.adminCert?.serial ?? null;
    if (name.startsWith('site/')) return this.siteCerts.get(name.slice(5))?.serial ?? null;
    if (name.startsWith('acme/')) return this.acme?.currentSerial(name) ?? null;
    for (const c of this.fileCerts.values()) if (c.name === name) return c.serial;
    return null;
  }

  close(): void {
    this.closed = true;
    if (this.tick) clearInterval(this.tick);
    for (const c of this.siteCerts.values()) if (c.timer) clearTimeout(c.timer);
    if (this.clientCert?.timer) clearTimeout(this.clientCert.timer);
    if (this.adminCert?.timer) clearTimeout(this.adminCert.timer);
  }
}
