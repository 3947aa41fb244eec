/**
 * The identity services of one gateway process, opened once at start and kept across
 * reloads: the revocation store, the identity registry (store + in-memory view), JWKS
 * URL fetchers, and the admin API routes. Opened only when `auth.issuers` is not empty.
 * The CLI opens the same stores through `openIdentityStores` (same classes, same key
 * layout as the gateway).
 */
import { resolve } from 'node:path';
import type { Redis } from 'ioredis';
import type { Config, IssuerConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { DependencyStates } from '../observability/dependency-state.js';
import { RemoteJwks } from '../stages/token/keys.js';
import { createPostgresClient, stateDir } from '../stores/postgres-client.js';
import { createPostgresIdentityStore } from '../stores/identities/postgres.js';
import { createSqliteIdentityStore } from '../stores/identities/sqlite.js';
import type { IdentityStore } from '../stores/identities/types.js';
import { createIdentityView, type IdentityView } from '../stores/identities/view.js';
import { createRedisClient } from '../stores/rate-limit/redis-client.js';
import { redisConnection } from '../stores/store-tls.js';
import { createRedisRevocationStore } from '../stores/revocation/redis.js';
import { createSqliteRevocationStore } from '../stores/revocation/sqlite.js';
import type { RevocationStore } from '../stores/revocation/types.js';

export interface IdentityStores {
  readonly revocations: RevocationStore;
  readonly identities: IdentityStore;
  /** Announces a registry change to other instances (Redis pub/sub); no-op without Redis. */
  announce(): Promise<void>;
  /** Resolves once the stores can take writes (Redis connected), rejects after the connect timeout. */
  ready(): Promise<void>;
  close(): Promise<void>;
}


export function identityChannel(config: Config): string {
  return `${config.state.redis?.key_prefix ?? 'gatehouse:'}identities:changed`;
}

export function openIdentityStores(config: Config, dir: string, opts: { now?: () => number; log?: Logger } = {}): IdentityStores {
  const sdir = stateDir(config.state.dir, dir);
  let redis: Redis | null = null;
  let revocations: RevocationStore;
  if (config.state.store === 'redis') {
    const r = config.state.redis;
    if (!r) throw new Error('state.redis missing');
    const { url, password, tls } = redisConnection(config, dir);
    redis = createRedisClient({ url, password, tls, commandTimeoutMs: Math.max(r.command_timeout, 1000), connectTimeoutMs: r.connect_timeout });
    revocations = createRedisRevocationStore({
      client: redis,
      subscriber: { url, password, tls, connectTimeoutMs: r.connect_timeout },
      prefix: r.key_prefix,
      maxStalenessMs: config.revocation.max_staleness,
      now: opts.now,
      onEvent: (event, fields) => opts.log?.warn({ event, ...fields }, 'revocation store event'),
    });
  } else {
    revocations = createSqliteRevocationStore({
      file: resolve(sdir, 'revocations.db'),
      maxStalenessMs: config.revocation.max_staleness,
      pollIntervalMs: config.revocation.poll_interval,
      now: opts.now,
    });
  }
  let identities: IdentityStore;
  if (config.identities.store === 'postgres') {
    const pg = config.state.postgres;
    if (!pg) throw new Error('state.postgres missing');
    identities = createPostgresIdentityStore(createPostgresClient(pg, dir, { max: Math.min(pg.max_connections, 4), ca: config.ca }), pg.schema);
  } else {
    identities = createSqliteIdentityStore(resolve(sdir, 'identities.db'));
  }
  const channel = identityChannel(config);
  return {
    revocations,
    identities,
    async announce() {
      if (redis !== null) await redis.publish(channel, '1').catch(() => undefined);
    },
    ready() {
      const c = redis;
      if (c === null || c.status === 'ready') return Promise.resolve();
      const ms = config.state.redis?.connect_timeout ?? 2000;
      return new Promise((ok, fail) => {
        const t = setTimeout(() => fail(new Error(`Redis not reachable within ${ms} ms`)), ms);
        c.once('ready', () => {
          clearTimeout(t);
          ok();
        });
      });
    },
    async close() {
      await revocations.close();
      await identities.close();
      redis?.disconnect();
    },
  };
}

export class IdentityServices {
  readonly stores: IdentityStores;
  readonly view: IdentityView;
  private readonly jwks = new Map<string, RemoteJwks>();
  private sub: Redis | null = null;
  private gauges: NodeJS.Timeout | null = null;

  constructor(
    readonly config: Config,
    readonly dir: string,
    private readonly log: Logger,
    private readonly now?: () => number,
    private readonly metrics?: Metrics,
    private readonly deps?: DependencyStates,
  ) {
    this.stores = openIdentityStores(config, dir, { now, log });
    this.view = createIdentityView(this.stores.identities, {
      refreshMs: config.identities.refresh_interval,
      maxStalenessMs: config.identities.max_staleness,
      now,
    });
  }

  /** Loads everything; never rejects (what failed is not current, so requests get 503s). */
  async start(): Promise<void> {
    await this.stores.identities.init().catch((err: unknown) => this.log.error({ event: 'identity_store_init_failed', err: String(err) }, 'identity registry unavailable'));
    if (this.config.state.store === 'redis' && this.config.state.redis) {
      // A registry change announced by any instance (or the CLI) refreshes the view at once.
      const r = this.config.state.redis;
      const sub = createRedisClient({ ...redisConnection(this.config, this.dir), connectTimeoutMs: r.connect_timeout });
      sub.on('message', () => this.view.nudge());
      sub.on('ready', () => void sub.subscribe(identityChannel(this.config)).catch(() => undefined));
      this.sub = sub;
    }
    this.started = true;
    let update: (() => void) | undefined;
    if (this.metrics || this.deps) {
      const m = this.metrics;
      // Both are fail-closed states (authenticated requests get 503): their change is a
      // dependency transition, found by the same 1 s poll that sets the gauges.
      const revocation = this.deps?.dependency('revocation_set', { describe: 'the revocation set' });
      const registry = this.deps?.dependency('identity_registry', { describe: 'the identity registry' });
      update = () => {
        const t = (this.now ?? Date.now)();
        const revCurrent = this.stores.revocations.current(t);
        const regCurrent = this.view.current(t);
        m?.revocationEntries.set(this.stores.revocations.list(t).length);
        m?.revocationCurrent.set(revCurrent ? 1 : 0);
        m?.identityRegistryCurrent.set(regCurrent ? 1 : 0);
        if (revCurrent) revocation?.up();
        else revocation?.down(`not confirmed within revocation.max_staleness (${this.config.revocation.max_staleness} ms)`);
        if (regCurrent) registry?.up();
        else registry?.down(`not refreshed within identities.max_staleness (${this.config.identities.max_staleness} ms)`);
      };
      this.gauges = setInterval(update, 1000);
      this.gauges.unref();
    }
    await Promise.all([this.stores.revocations.start(), this.view.start(), ...[...this.jwks.values()].map((j) => j.start())]);
    // The gauges say what is true once loading ended, not a second later: a probe (or
    // `gatehouse doctor`) reading them right after start must not see a stale 0.
    update?.();
  }

  remoteJwks(issuer: IssuerConfig): RemoteJwks {
    const url = issuer.jwks_url as string;
    const key = `${url} ${issuer.algorithms.join(',')} ${issuer.jwks_refresh} ${issuer.jwks_max_stale}`;
    let j = this.jwks.get(key);
    if (!j) {
      j = new RemoteJwks(url, issuer.algorithms, issuer.jwks_refresh, issuer.jwks_max_stale, this.log, this.now, this.deps?.dependency(`jwks:${url}`, { describe: `the JWKS at ${url}` }));
      this.jwks.set(key, j);
      // Fetchers created after start (by a reload) start themselves.
      if (this.started) void j.start();
    }
    return j;
  }

  private started = false;

  /** For /readyz. */
  notReady(nowMs: number): string | null {
    if (!this.stores.revocations.current(nowMs)) return 'revocation set not current';
    if (!this.view.current(nowMs)) return 'identity registry not current';
    return null;
  }

  async close(): Promise<void> {
    if (this.gauges) clearInterval(this.gauges);
    for (const j of this.jwks.values()) j.close();
    this.view.close();
    this.sub?.disconnect();
    await this.stores.close();
  }
}
