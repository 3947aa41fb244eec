/**
 * The gateway process: public listeners, the admin listener, config generations
 * (reload), and graceful shutdown. No security decision is made here; requests go
 * straight to pipeline/handle.ts with the current runtime.
 *
 * Reload (SIGHUP, file change, or `reload()`): the new file is loaded and validated, a
 * new runtime is compiled, and the reference is swapped in one assignment. Requests
 * already running keep the runtime they started with; resources only the old generation
 * used (upstream pools, a replaced store) are released when its last request ends.
 * Rate-limit counters live in the store, which is kept when its config is unchanged, so
 * they survive reloads. An invalid file is refused, logged with every problem, counted,
 * and the last good config keeps serving.
 */
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import { compileAllowList, prepareClientCertificates } from '../admin/client-cert.js';
import { createAdminServer, type AdminAuth, type AdminRoute } from '../admin/server.js';
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { readSecretFile } from '../config/secrets.js';
import { compileCidrs } from '../net/ip.js';
import { createDenialLog } from '../observability/denial-log.js';
import { createDependencyStates, watchRedisConnection, type DependencyStates } from '../observability/dependency-state.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import type { GatewayContext } from '../pipeline/context.js';
import { handleRequest, handleStream, handleUpgrade, peerOf } from '../pipeline/handle.js';
import { buildRuntime, type Runtime } from '../pipeline/runtime.js';
import { PoolCache } from '../stages/proxy/pools.js';
import { redisConnection } from '../stores/store-tls.js';
import { createMemoryRateLimitStore, createRedisClient, createRedisRateLimitStore } from '../stores/rate-limit/index.js';
import type { RateLimitStore } from '../stores/rate-limit/types.js';
import { createMemoryTokenBudgetStore, createRedisTokenBudgetStore } from '../stores/token-budget/index.js';
import type { TokenBudgetStore } from '../stores/token-budget/types.js';
import { AuditGate, AuditService } from '../audit/service.js';
import type { AcmeServer } from '../acme/server/index.js';
import { VERSION } from '../version.js';
import { IdentityServices } from '../identity/services.js';
import { identityAdminRoutes } from '../identity/admin-routes.js';
import { llmAdminRoutes } from '../stages/llm/usage-report.js';
import { PolicyRegistry } from '../stages/policy/registry.js';
import { parseListenAddress } from './address.js';
import type { BoundListeners } from './bind.js';
import { createClientErrorHandler } from './client-errors.js';
import { alpnProtocols, Http2Front, http2Enabled } from './http2.js';
import { createRedirector } from './redirect.js';
import { applyHeapGrowth } from './heap.js';
import { TlsManager } from './tls.js';
import { tlsAdminRoutes } from './tls-admin.js';

export interface GatewayOptions {
  readonly loaded: LoadedConfig;
  /** Defaults to a pino logger on stdout at the configured level. */
  readonly logger?: Logger;
  /** Watch the config file and reload on change (default true for `run`). */
  readonly watch?: boolean;
  /** Epoch-ms clock for the rate limiter (tests). */
  readonly now?: () => number;
  /** Listeners bound before privileges were dropped (`run` as root); the servers adopt them instead of binding. */
  readonly bound?: BoundListeners;
}

interface Generation {
  readonly rt: Runtime;
  inflight: number;
  retired: boolean;
  readonly store: StoreHandle;
}

interface StoreHandle {
  readonly key: string;
  readonly store: RateLimitStore;
  /** LLM token budgets, on the same backend (and Redis connection) as the rate limits. */
  readonly budgets: TokenBudgetStore;
  refs: number;
  close(): Promise<void>;
}

export interface ReloadResult {
  readonly ok: boolean;
  readonly generation: number;
  readonly error?: string;
}

/** Only the settings the rate-limit store depends on: other `state` keys don't reopen it. */
function storeKey(config: Config): string {
  return config.state.store === 'memory' ? 'memory' : JSON.stringify({ store: config.state.store, redis: config.state.redis });
}

function openStore(config: Config, dir: string, deps: DependencyStates): StoreHandle {
  if (config.state.store === 'memory') {
    const store = createMemoryRateLimitStore();
    const budgets = createMemoryTokenBudgetStore();
    return {
      key: 'memory',
      store,
      budgets,
      refs: 0,
      async close() {
        await store.close();
        await budgets.close();
      },
    };
  }
  const r = config.state.redis;
  if (!r) throw new Error('state.redis missing');
  const client = createRedisClient({
    ...redisConnection(config, dir),
    commandTimeoutMs: r.command_timeout,
    connectTimeoutMs: r.connect_timeout,
  });
  // Both stores share one connection; each is its own dependency (its own fail-closed answer).
  const rateDep = deps.dependency('rate_limit_store', { describe: 'the rate-limit store (Redis)' });
  const budgetDep = deps.dependency('token_budget_store', { describe: 'the LLM token-budget store (Redis)' });
  watchRedisConnection(client, [rateDep, budgetDep]);
  const store = createRedisRateLimitStore({ client, prefix: `${r.key_prefix}rl:`, health: rateDep });
  const budgets = createRedisTokenBudgetStore({ client, prefix: r.key_prefix, health: budgetDep });
  return {
    key: storeKey(config),
    store,
    budgets,
    refs: 0,
    async close() {
      await store.close();
      await budgets.close();
      client.disconnect();
    },
  };
}

export class Gateway {
  readonly ctx: GatewayContext;
  readonly metrics: Metrics;
  readonly log: Logger;
  private loaded: LoadedConfig;
  private gen: Generation;
  /** Generations with requests still running (the current one included). */
  private readonly live = new Set<Generation>();
  private generation = 1;
  private readonly pools = new PoolCache();
  private readonly servers: Server[] = [];
  /** The HTTP/2 sessions of TLS listeners with `http2` (server/http2.ts). */
  private readonly h2: Http2Front[] = [];
  /** Upgraded (WebSocket) connections: closeAllConnections() does not see them. */
  private readonly tunnels = new Set<import('node:stream').Duplex>();
  private admin: Server | null = null;
  private watcher: FSWatcher | null = null;
  private lastHash = '';
  private closing: Promise<void> | null = null;
  private readonly now: (() => number) | undefined;
  /** Admin API routes registered by modules (revocation, identities, audit). */
  readonly adminRoutes: AdminRoute[] = [];
  private adminToken: string | null = null;
  /** Identities allowed to use the admin API by client certificate; null when that is not configured. */
  private adminAllow: ReadonlySet<string> | null = null;
  /** Certificates for HTTPS listeners and trust material for https:// upstreams (docs/tls.md). */
  readonly tls: TlsManager;
  /** The audit trail (null when `audit.enabled` is false); its gate stage exists from the first runtime on. */
  audit: AuditService | null = null;
  private readonly auditGate = new AuditGate();
  /** Revocation, identity registry, JWKS fetchers (null without auth.issuers). */
  readonly identity: IdentityServices | null;
  /** The ACME server on the internal CA (docs/acme.md); null without `acme_server`. */
  acme: AcmeServer | null = null;
  /** Policy sets per site across generations; their files are watched and hot-reloaded (docs/policy.md). */
  readonly policies: PolicyRegistry;

  private constructor(opts: GatewayOptions) {
    this.loaded = opts.loaded;
    const config = opts.loaded.config;
    this.log = opts.logger ?? createLogger({ level: config.log.level });
    this.metrics = createMetrics({ version: VERSION });
    this.ctx = {
      metrics: this.metrics,
      log: this.log,
      denials: createDenialLog(this.log, config.log.denial_lines_per_minute),
      dependencies: createDependencyStates(this.log, this.metrics),
      version: VERSION,
      observers: [],
      beforeRespond: null,
      onConnectionDrop: null,
      draining: false,
      inflight: 0,
      onIdle: null,
    };
    this.now = opts.now;
    this.policies = new PolicyRegistry(this.log, this.metrics, true);
    this.tls = new TlsManager({ config, dir: opts.loaded.dir, metrics: this.metrics, log: this.log, dependencies: this.ctx.dependencies, now: opts.now });
    this.pools.setTls(this.tls);
    this.adminRoutes.push(...tlsAdminRoutes(this.tls));
    const store = openStore(config, opts.loaded.dir, this.ctx.dependencies);
    store.refs++;
    this.identity = config.auth.issuers.length > 0 ? new IdentityServices(config, opts.loaded.dir, this.log, this.now, this.metrics, this.ctx.dependencies) : null;
    this.gen = { rt: buildRuntime(config, 1, { ctx: this.ctx, pools: this.pools, rateStore: store.store, tokenBudgets: store.budgets, now: this.now, auditGate: this.auditGate, identity: this.identity, policies: this.policies, dir: opts.loaded.dir }), inflight: 0, retired: false, store };
    this.live.add(this.gen);
    this.policies.commit();
    if (this.identity) this.adminRoutes.push(...identityAdminRoutes(this.identity, () => this.config, () => this.loaded.dir, this.now));
    this.adminRoutes.push(...llmAdminRoutes(() => this.config, () => this.gen.store.budgets, this.identity, this.now ?? Date.now));
    this.lastHash = hashFile(opts.loaded.file);
    this.adminToken = readAdminToken(opts.loaded);
    this.adminAllow = adminAllowList(config);
  }

  static async start(opts: GatewayOptions): Promise<Gateway> {
    applyHeapGrowth(opts.loaded.config.process.heap_growing_percent);
    const gw = new Gateway(opts);
    try {
      // Turning admin.client_certificates on takes a restart: its certificate parser is loaded here or never.
      if (gw.adminAllow !== null) await prepareClientCertificates();
      await gw.tls.start();
      if (opts.loaded.config.audit.enabled) {
        gw.audit = await AuditService.open(opts.loaded, gw.ctx);
        gw.auditGate.service = gw.audit;
        gw.adminRoutes.push(...gw.audit.routes);
      }
      await gw.identity?.start();
      const acme = opts.loaded.config.acme_server;
      if (acme) {
        // The ACME server (and @peculiar/x509, its stores' clients) only for a gateway that runs one; acme_server changes only on restart.
        const [{ openAcmeServer }, { acmeAuditBody }] = await Promise.all([import('../acme/server/index.js'), import('../acme/server/audit.js')]);
        gw.acme = await openAcmeServer(opts.loaded.config, opts.loaded.dir, {
          log: gw.log,
          metrics: gw.metrics,
          // Issuance and revocation are recorded like any decision (fail closed: an audit that cannot keep records fails the request).
          audit: gw.audit === null ? undefined : (e) => (gw.audit as AuditService).recordEvent(acmeAuditBody(e)),
          now: opts.now,
        });
      }
      await gw.storeConnected();
      await gw.listen(opts.bound);
      // ACME orders need the listeners: the CA's validation connects to them.
      gw.tls.acme?.begin();
    } catch (err) {
      opts.bound?.close();
      await gw.close(0);
      throw err;
    }
    for (const w of opts.loaded.warnings) gw.log.warn({ event: 'config_warning', path: w.path }, w.message);
    if (opts.watch) gw.watchFile();
    return gw;
  }

  /**
   * A distributed rate-limit store connects in the background; requests that come before
   * it is up are refused (503 rate_limit_unavailable, fail closed). Give it up to its
   * connect timeout before opening the listeners, so a start with Redis up serves from the
   * first request; past that, start anyway (not ready on /readyz until it connects).
   */
  private async storeConnected(): Promise<void> {
    const redis = this.config.state.store === 'redis' ? this.config.state.redis : undefined;
    if (redis === undefined) return;
    const deadline = Date.now() + redis.connect_timeout;
    while (!this.gen.store.store.ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (!this.gen.store.store.ready()) this.log.warn({ event: 'rate_limit_store_not_connected' }, 'starting before the rate-limit store is reachable: limited requests are refused until it is');
  }

  get runtime(): Runtime {
    return this.gen.rt;
  }

  get config(): Config {
    return this.gen.rt.config;
  }

  private async listen(bound?: BoundListeners): Promise<void> {
    const config = this.config;
    let index = 0;
    const onClientError = createClientErrorHandler(this.ctx, () => this.gen.rt);
    const redirect = createRedirector(this.ctx, () => this.gen.rt, () => this.httpsPort());
    for (const l of config.listen) {
      const addr = parseListenAddress(l.address);
      if (!addr) throw new Error(`bad listen address ${l.address}`);
      const scheme = l.tls ? 'https' : 'http';
      const serverOptions = {
          maxHeaderSize: config.http.max_header_bytes,
          headersTimeout: config.http.header_timeout,
          requestTimeout: config.http.request_timeout,
          keepAliveTimeout: config.http.keep_alive_timeout,
          // How often Node checks header/request timeouts; keep it well under the timeouts.
          connectionsCheckingInterval: Math.max(250, Math.min(5000, Math.floor(config.http.header_timeout / 4))),
          requireHostHeader: false,
          noDelay: true,
        };
      const handler = l.redirect_https ? redirect.request : (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => this.onRequest(req, res, scheme);
      // ACME http-01 challenges are answered on plain-HTTP listeners before routing, the redirect and every stage.
      const http01 = l.tls ? null : (this.tls.acme?.http01 ?? null);
      const onRequest = http01 ? (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => http01.handle(req, res, handler) : handler;
      // An HTTPS listener is the same server with TLS underneath: same handlers, same limits.
      const server = (l.tls ? createHttpsServer({ ...serverOptions, ...this.tls.serverOptions(l), ALPNProtocols: alpnProtocols(l) }, onRequest) : createServer(serverOptions, onRequest)) as Server;
      if (l.tls) this.tls.attach(server as unknown as import('node:https').Server, l);
      if (http2Enabled(l) && !l.redirect_https) {
        const front = new Http2Front(config, (req, res, peer) => this.onStream(req, res, peer), this.metrics, this.log);
        front.attach(server as unknown as import('node:tls').Server);
        this.h2.push(front);
      }
      // We count headers ourselves (431 from request_limits); max_header_bytes bounds them.
      server.maxHeadersCount = 0;
      // Expect: 100-continue is answered by the proxy only once every stage admitted the
      // request; a refused client never sees a 100 (nor any byte, for the IP filter).
      server.on('checkContinue', onRequest);
      // Any other Expect value: Node would answer 417 before the IP filter; the proxy
      // answers it instead, after every stage (docs/lifecycle.md).
      server.on('checkExpectation', onRequest);
      server.on('upgrade', (req, socket, head) => {
        if (l.redirect_https) return redirect.upgrade(req, socket);
        const gen = this.enter();
        this.tunnels.add(socket);
        socket.once('close', () => this.tunnels.delete(socket));
        handleUpgrade(this.ctx, gen.rt, req, socket, head, scheme, () => this.leave(gen));
      });
      server.on('clientError', onClientError);
      server.on('connection', (socket: Socket) => this.onConnection(socket));
      const key = `listen[${index++}]`;
      if (bound?.has(key)) await bound.adopt(key, server);
      else {
        await new Promise<void>((ok, fail) => {
          server.once('error', fail);
          // ':port' (host '') listens on every interface, IPv6 and IPv4 where available.
          server.listen(addr.port, addr.host === '' ? undefined : addr.host, () => {
            server.off('error', fail);
            ok();
          });
        });
      }
      this.servers.push(server);
    }
    if (config.admin.enabled) {
      const addr = parseListenAddress(config.admin.listen);
      if (!addr) throw new Error(`bad admin address ${config.admin.listen}`);
      const admin = createAdminServer({
        metrics: this.metrics,
        notReady: () => this.notReady(),
        routes: () => this.adminRoutes,
        auth: () => this.adminAuth(),
        log: this.log,
        tls: config.admin.tls ? this.tls.adminServerOptions() : undefined,
      });
      if (config.admin.tls) this.tls.attachAdmin(admin as unknown as HttpsServer);
      if (bound?.has('admin')) await bound.adopt('admin', admin);
      else {
        await new Promise<void>((ok, fail) => {
          admin.once('error', fail);
          admin.listen(addr.port, addr.host, () => {
            admin.off('error', fail);
            ok();
          });
        });
      }
      this.admin = admin;
    }
    this.log.info({ event: 'listening', listen: this.addresses().public.map(fmt), admin: this.addresses().admin ? fmt(this.addresses().admin as AddressInfo) : null, version: VERSION }, 'gatehouse listening');
  }

  private readonly adminTrustedNow = (socket: Socket): boolean => this.tls.adminTrustCurrent(socket);

  /** Read per admin API request: the token and allow list of the current config, and the trust-pool check. */
  private adminAuth(): AdminAuth {
    return { token: this.adminToken, clientCerts: this.adminAllow === null ? null : { allow: this.adminAllow, trustedNow: this.adminTrustedNow } };
  }

  /** The global IP filter also applies per connection, so a denied peer gets zero bytes even for malformed requests. */
  private onConnection(socket: Socket): void {
    const f = this.config.ip_filter;
    if (!f) return;
    const rt = this.gen.rt;
    const peer = peerOf(socket);
    if (rt.trusted.has(peer)) return; // the real client is only known from the request
    const allow = f.allow ? compileCidrsCached(f.allow) : null;
    const deny = compileCidrsCached(f.deny);
    const list = deny.has(peer) ? 'deny' : allow !== null && !allow.has(peer) ? 'allow' : null;
    if (list !== null) {
      this.metrics.ipDenials.labels('-', list).inc();
      this.ctx.denials.record(peer, '-', list);
      if (this.ctx.onConnectionDrop !== null) this.ctx.onConnectionDrop(peer, list);
      socket.destroy();
    }
  }

  private onRequest(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, scheme: 'http' | 'https'): void {
    const gen = this.enter();
    handleRequest(this.ctx, gen.rt, req, res, scheme, () => this.leave(gen));
  }

  private onStream(req: import('node:http2').Http2ServerRequest, res: import('node:http2').Http2ServerResponse, peer: string): void {
    const gen = this.enter();
    handleStream(this.ctx, gen.rt, req, res, peer, () => this.leave(gen));
  }

  /** The port of the first HTTPS listener, the target of redirect_https. */
  private httpsPort(): number | null {
    const i = this.config.listen.findIndex((l) => l.tls);
    const a = i >= 0 ? this.servers[i]?.address() : null;
    return a && typeof a === 'object' ? a.port : null;
  }

  private enter(): Generation {
    const gen = this.gen;
    gen.inflight++;
    return gen;
  }

  private leave(gen: Generation): void {
    gen.inflight--;
    if (gen.retired && gen.inflight === 0) this.release(gen);
  }

  /** Frees what only a retired generation used, once its last request is done. */
  private release(gen: Generation): void {
    if (!this.live.delete(gen)) return;
    gen.store.refs--;
    if (gen.store.refs === 0 && gen.store !== this.gen.store) {
      gen.store.close().catch((err: unknown) => this.log.warn({ event: 'store_close_failed', err: String(err) }, 'closing a replaced store failed'));
    }
    // Keep every pool a live generation still uses (several reloads can overlap).
    const keep = [...this.live].flatMap((g) => g.rt.config.sites);
    void this.pools.retain(keep);
  }

  private notReady(): string | null {
    if (this.ctx.draining) return 'shutting down';
    if (this.servers.length === 0) return 'not listening';
    if (!this.gen.store.store.ready()) return 'rate-limit store unreachable';
    if (this.audit !== null && !this.audit.accepting) return 'audit trail cannot keep records';
    const idReason = this.identity?.notReady((this.now ?? Date.now)()) ?? null;
    if (idReason !== null) return idReason;
    return null;
  }

  addresses(): { public: AddressInfo[]; admin: AddressInfo | null } {
    return {
      public: this.servers.map((s) => s.address() as AddressInfo),
      admin: this.admin ? (this.admin.address() as AddressInfo) : null,
    };
  }

  /** Reloads from the config file. Never throws: failure keeps the last good config. */
  async reload(reason = 'api'): Promise<ReloadResult> {
    const file = this.loaded.file;
    let loaded: LoadedConfig;
    try {
      loaded = loadConfig(file);
      const problems = listenerChanges(this.config, loaded.config);
      if (problems.length > 0) throw new ConfigError(file, problems.map(({ path, message }) => ({ path, message, severity: 'error' as const })));
    } catch (err) {
      return this.reloadFailed(reason, err);
    }
    let store = this.gen.store;
    let rt: Runtime;
    try {
      if (storeKey(loaded.config) !== store.key) store = openStore(loaded.config, loaded.dir, this.ctx.dependencies);
      rt = buildRuntime(loaded.config, this.generation + 1, { ctx: this.ctx, pools: this.pools, rateStore: store.store, tokenBudgets: store.budgets, now: this.now, auditGate: this.auditGate, identity: this.identity, policies: this.policies, dir: loaded.dir });
    } catch (err) {
      if (store !== this.gen.store) void store.close();
      this.policies.discard();
      return this.reloadFailed(reason, err);
    }
    const old = this.gen;
    this.policies.commit();
    if (loaded.config.state.store === 'memory') {
      // An embedded store cannot go down: the Redis dependencies are gone with the reload.
      this.ctx.dependencies.forget('rate_limit_store');
      this.ctx.dependencies.forget('token_budget_store');
    }
    store.refs++;
    this.generation++;
    this.gen = { rt, inflight: 0, retired: false, store };
    this.live.add(this.gen);
    this.loaded = loaded;
    this.lastHash = hashFile(file);
    old.retired = true;
    if (old.inflight === 0) this.release(old);
    this.applyServerLimits(loaded.config);
    this.log.level = loaded.config.log.level;
    applyHeapGrowth(loaded.config.process.heap_growing_percent);
    this.adminToken = readAdminToken(loaded);
    this.adminAllow = adminAllowList(loaded.config);
    void this.tls.update(loaded.config, loaded.dir);
    this.audit?.reload(loaded);
    if (this.audit === null && loaded.config.audit.enabled) this.log.warn({ event: 'audit_restart_required' }, 'audit.enabled takes effect on restart');
    this.ctx.denials.setBudget(loaded.config.log.denial_lines_per_minute);
    this.metrics.configReloads.labels('success').inc();
    this.metrics.configLastReload.labels('success').set(Date.now() / 1000);
    for (const w of loaded.warnings) this.log.warn({ event: 'config_warning', path: w.path }, w.message);
    this.log.info({ event: 'config_reloaded', generation: this.generation, reason }, 'config reloaded');
    return { ok: true, generation: this.generation };
  }

  private reloadFailed(reason: string, err: unknown): ReloadResult {
    this.metrics.configReloads.labels('failure').inc();
    this.metrics.configLastReload.labels('failure').set(Date.now() / 1000);
    const problems = err instanceof ConfigError ? err.problems.map((p) => `${p.path}: ${p.message}`) : [String((err as Error)?.message ?? err)];
    this.log.error({ event: 'config_reload_failed', reason, problems, generation: this.generation }, 'config reload refused; the last good config keeps serving');
    return { ok: false, generation: this.generation, error: problems.join('; ') };
  }

  private applyServerLimits(config: Config): void {
    for (const s of this.servers) {
      s.headersTimeout = config.http.header_timeout;
      s.requestTimeout = config.http.request_timeout;
      s.keepAliveTimeout = config.http.keep_alive_timeout;
      // Read by Node when it sets up each new connection's parser.
      (s as Server & { maxHeaderSize?: number }).maxHeaderSize = config.http.max_header_bytes;
    }
    for (const f of this.h2) f.update(config);
  }

  /** Watches the config file's directory (editors and ConfigMaps replace files by rename/symlink swap). */
  private watchFile(): void {
    const file = this.loaded.file;
    const name = basename(file);
    let timer: NodeJS.Timeout | null = null;
    try {
      this.watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
        if (changed !== null && changed !== name && !String(changed).startsWith('..')) return;
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          timer = null;
          const h = hashFile(file);
          if (h === this.lastHash || h === '') return;
          void this.reload('file_change');
        }, 150);
        timer.unref();
      });
    } catch (err) {
      this.log.warn({ event: 'config_watch_failed', err: String(err) }, 'cannot watch the config file; reload with SIGHUP');
    }
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight requests finish (new requests on
   * open keep-alive connections are still served, with `Connection: close`), then close
   * whatever is left after `graceMs`, and release pools and stores.
   */
  close(graceMs = this.config.http.shutdown_grace): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      this.ctx.draining = true;
      this.watcher?.close();
      this.policies.close();
      this.tls.close();
      await this.tls.acme?.close();
      const closed = this.servers.map((s) => new Promise<void>((ok) => s.close(() => ok())));
      for (const s of this.servers) s.closeIdleConnections();
      for (const f of this.h2) f.drain();
      if (this.ctx.inflight > 0) {
        await new Promise<void>((ok) => {
          const t = setTimeout(ok, graceMs);
          t.unref();
          this.ctx.onIdle = () => {
            clearTimeout(t);
            ok();
          };
        });
      }
      for (const s of this.servers) s.closeAllConnections();
      for (const f of this.h2) f.destroyAll();
      for (const t of this.tunnels) t.destroy();
      await Promise.all(closed);
      if (this.admin) {
        this.admin.closeAllConnections();
        await new Promise<void>((ok) => this.admin?.close(() => ok()));
      }
      await this.pools.closeAll(true);
      const stores = new Set([...this.live].map((g) => g.store));
      await Promise.all([...stores].map((st) => st.close().catch(() => undefined)));
      await this.acme?.close().catch((err: unknown) => this.log.error({ event: 'acme_close_failed', err: String(err) }, 'ACME server not closed cleanly'));
      await this.audit?.close().catch((err: unknown) => this.log.error({ event: 'audit_close_failed', err: String(err) }, 'audit trail not closed cleanly'));
      await this.identity?.close().catch(() => undefined);
      this.ctx.denials.close();
      this.log.info({ event: 'stopped' }, 'gatehouse stopped');
      await new Promise<void>((ok) => this.log.flush(() => ok()));
    })();
    return this.closing;
  }
}

const cidrCache = new WeakMap<readonly string[], ReturnType<typeof compileCidrs>>();
function compileCidrsCached(list: readonly string[]): ReturnType<typeof compileCidrs> {
  let c = cidrCache.get(list);
  if (!c) cidrCache.set(list, (c = compileCidrs(list)));
  return c;
}

function readAdminToken(loaded: LoadedConfig): string | null {
  const f = loaded.config.admin.token_file;
  return f ? readSecretFile(resolve(loaded.dir, f)) : null;
}

function adminAllowList(config: Config): ReadonlySet<string> | null {
  const c = config.admin.client_certificates;
  return c && config.admin.tls ? compileAllowList(c.allow) : null;
}

function listenerChanges(a: Config, b: Config): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  if (JSON.stringify(a.listen) !== JSON.stringify(b.listen)) out.push({ path: 'listen', message: 'listen addresses change only on restart' });
  if (a.admin.listen !== b.admin.listen || a.admin.enabled !== b.admin.enabled) out.push({ path: 'listen', message: 'the admin listener changes only on restart' });
  // HTTP or HTTPS, and whether the handshake asks for a client certificate, are fixed when the server is made.
  if (JSON.stringify(a.admin.tls ?? null) !== JSON.stringify(b.admin.tls ?? null)) out.push({ path: 'admin.tls', message: 'admin.tls changes only on restart' });
  if ((a.admin.client_certificates === undefined) !== (b.admin.client_certificates === undefined)) {
    out.push({ path: 'admin.client_certificates', message: 'turning admin.client_certificates on or off takes a restart (its ca_file and allow list apply at reload)' });
  }
  if (JSON.stringify(a.acme_server ?? null) !== JSON.stringify(b.acme_server ?? null)) out.push({ path: 'acme_server', message: 'acme_server changes only on restart' });
  if (identityStoresKey(a) !== identityStoresKey(b)) out.push({ path: 'listen', message: 'enabling auth, and the revocation and identity stores, change only on restart' });
  return out;
}

/** What the identity services were opened with (gateway start); '' when they are not open. */
function identityStoresKey(c: Config): string {
  if (c.auth.issuers.length === 0) return '';
  return JSON.stringify([c.state, c.identities.store, c.revocation, c.identities.refresh_interval, c.identities.max_staleness, c.admin.issuer ?? null]);
}

function hashFile(file: string): string {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return '';
  }
}

function fmt(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
