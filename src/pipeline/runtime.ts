/**
 * A runtime is one compiled generation of the config: router, sites with their stage
 * lists, the client-IP resolver and the global filter. It is built once (at start and on
 * each reload) and never changes; a request reads the current runtime once when it
 * arrives and keeps it to the end, so in-flight requests finish on the config they
 * started with while new ones use the new generation.
 */
import type { Config, SiteConfig } from '../config/schema.js';
import { canonicalSiteHost } from '../http/host.js';
import { normalizePath } from '../http/path.js';
import { createClientIpResolver, type ClientIpResolver } from '../net/client-ip.js';
import { compileCidrs, type CidrSet } from '../net/ip.js';
import { compileHeaderPolicy, type HeaderPolicy } from '../stages/headers/index.js';
import { createIpFilterStage } from '../stages/ip-filter/index.js';
import type { PoolCache } from '../stages/proxy/pools.js';
import { createProxy } from '../stages/proxy/index.js';
import { UpstreamBalancer } from '../stages/proxy/balancer.js';
import { compileStrip } from '../stages/proxy/forward-path.js';
import { createRedirect } from '../stages/proxy/redirect.js';
import { createRateLimitStage } from '../stages/rate-limit/index.js';
import { createRequestLimitsStage } from '../stages/request-limits/index.js';
import { compileReading, createRequestStage } from '../stages/request/index.js';
import type { RateLimitStore } from '../stores/rate-limit/types.js';
import type { IdentityServices } from '../identity/services.js';
import { identityForwarding, identityStages } from '../identity/stages.js';
import { policyStages, zoneViolation } from '../stages/policy/compile.js';
import type { PolicyRegistry } from '../stages/policy/registry.js';
import { llmStages } from '../stages/llm/compile.js';
import type { TokenBudgetStore } from '../stores/token-budget/types.js';
import type { GatewayContext } from './context.js';
import { createRouter, type CompiledSite, type Router } from './site.js';
import type { Stage } from './stage.js';

export interface Runtime {
  readonly generation: number;
  readonly config: Config;
  readonly trusted: CidrSet;
  readonly resolveClientIp: ClientIpResolver;
  /** Stages that run before routing (the global IP filter). */
  readonly globalStages: readonly Stage[];
  readonly router: Router;
  readonly sites: readonly CompiledSite[];
  /** Header policy for answers made before a site is known (400, 421). */
  readonly headers: HeaderPolicy;
  readonly requestIdHeader: string;
  /** `http.unknown_host: close`: an unknown host is closed with zero bytes, not answered 421. */
  readonly unknownHostCloses: boolean;
}

export interface RuntimeDeps {
  readonly ctx: GatewayContext;
  readonly pools: PoolCache;
  readonly rateStore: RateLimitStore;
  /** Epoch ms clock for the rate limiter (tests inject one). */
  readonly now?: () => number;
  /** The audit gate (refuses with audit_unavailable when records cannot be kept); used when audit is enabled. */
  readonly auditGate?: Stage;
  /** Revocation, identity registry and JWKS fetchers; null when auth.issuers is empty. */
  readonly identity?: IdentityServices | null;
  /** Policy sets kept across generations (hot reload); null: loaded once, unwatched. */
  readonly policies?: PolicyRegistry | null;
  /** The config file's directory (relative policy file paths). */
  readonly dir?: string;
  /** Token budgets of LLM sites (same backend as rateStore). */
  readonly tokenBudgets?: TokenBudgetStore;
}

export function buildRuntime(config: Config, generation: number, deps: RuntimeDeps): Runtime {
  const { ctx } = deps;
  const globalHeaders = compileHeaderPolicy(config.headers);
  const requestIdHeader = config.http.request_id_header;
  const sites: CompiledSite[] = [];
  const entries: Array<{ host: string; site: CompiledSite }> = [];
  for (const sc of config.sites) {
    const headers = compileHeaderPolicy(config.headers, sc.headers);
    // The fixed stage order (docs/lifecycle.md): cheap checks before anything stateful.
    const stages: Stage[] = [];
    if (sc.ip_filter) stages.push(createIpFilterStage(sc.ip_filter));
    // Right after the connection filter: a client the filter drops gets no 503.
    if (config.audit.enabled && deps.auditGate) stages.push(deps.auditGate);
    // Before any control reads the request: refuse what has more than one reading.
    const reading = compileReading(config.http.request, sc.request);
    stages.push(createRequestStage(reading));
    stages.push(createRequestLimitsStage({ maxHeaders: config.http.max_headers, maxBodyBytes: sc.max_body_bytes }));
    const rl = createRateLimitStage({
      siteId: sc.id,
      rules: sc.rate_limits,
      store: deps.rateStore,
      ipv6Prefix: sc.rate_limit_ipv6_prefix,
      metrics: ctx.metrics,
      log: ctx.log,
      now: deps.now,
    });
    if (rl) stages.push(rl);
    // token → revocation → identity_rate_limit (sites with `auth` only).
    stages.push(...identityStages(config, sc, deps));
    // policy, after the identity is known and limited (docs/policy.md).
    stages.push(...policyStages(config, sc, deps));
    // llm, after policy (docs/llm.md): model control, credentials, token budgets.
    stages.push(...llmStages(config, sc, deps));
    const strip = compileStrip(sc.strip_prefix);
    // validate.ts makes sure a site has exactly one of upstream and redirect.
    const proxy =
      sc.upstream === undefined
        ? createRedirect(sc.redirect as NonNullable<SiteConfig['redirect']>, headers, ctx, strip)
        : createProxy({
            siteId: sc.id,
            balancer: new UpstreamBalancer(deps.pools.membersOf(sc.id, sc.upstream, ctx), sc.upstream),
            retry: sc.upstream.retry,
            strip,
            headers,
            ctx,
            maxBodyBytes: sc.max_body_bytes,
            bodyIdleTimeoutMs: config.http.body_idle_timeout,
            requestIdHeader,
            identityForwarding: identityForwarding(config, sc),
            headerUnderscores: reading.headerUnderscores,
            zoneViolation: zoneViolation(sc),
          });
    const norm = normalizePath(sc.path_prefix) ?? '/';
    const prefix = norm.endsWith('/') ? norm.slice(0, -1) : norm;
    const site: CompiledSite = Object.freeze({ id: sc.id, config: sc, stages: Object.freeze(stages), headers, proxy, prefix, reading });
    sites.push(site);
    for (const h of sc.hosts) entries.push({ host: canonicalSiteHost(h), site });
  }
  const globalStages: Stage[] = [];
  if (config.ip_filter) globalStages.push(createIpFilterStage(config.ip_filter));
  return Object.freeze({
    generation,
    config,
    trusted: compileCidrs(config.trusted_proxies),
    resolveClientIp: createClientIpResolver({ trustedProxies: config.trusted_proxies }),
    globalStages: Object.freeze(globalStages),
    router: createRouter(entries),
    sites: Object.freeze(sites),
    headers: globalHeaders,
    requestIdHeader,
    unknownHostCloses: config.http.unknown_host === 'close',
  });
}
