/**
 * The policy part of a site's stage list and its zone check, compiled once per config
 * generation.
 */
import { memberUrls } from '../proxy/members.js';
import type { Config, SiteConfig } from '../../config/schema.js';
import type { GatewayContext } from '../../pipeline/context.js';
import type { Stage } from '../../pipeline/stage.js';
import { createPolicyStage } from './index.js';
import { PolicyHandle, policyPaths, type PolicyRegistry } from './registry.js';

export interface PolicyRuntimeDeps {
  readonly ctx: GatewayContext;
  /** Keeps handles (and watchers) across generations; without it the files are loaded once, unwatched. */
  readonly policies?: PolicyRegistry | null;
  /** Directory relative policy paths resolve against (the config file's). */
  readonly dir?: string;
  readonly now?: () => number;
}

export function policyStages(config: Config, site: SiteConfig, deps: PolicyRuntimeDeps): Stage[] {
  const cfg = site.policy;
  if (!cfg) return [];
  const dir = deps.dir ?? process.cwd();
  const handle = deps.policies
    ? deps.policies.handleFor(site.id, cfg, dir)
    : new PolicyHandle(site.id, '', policyPaths(cfg, dir), cfg, deps.ctx.log, deps.ctx.metrics);
  // A redirect site has no upstream: the attribute is empty.
  const upstream = site.upstream === undefined ? '' : memberUrls(site.upstream).map((u) => new URL(u).host).join(',');
  return [
    createPolicyStage({
      handle,
      resource: { site: site.id, pathPrefix: site.path_prefix, upstream, zone: site.upstream?.zone ?? '', domain: site.domain ?? '' },
      bodyIdleTimeoutMs: config.http.body_idle_timeout,
      metrics: deps.ctx.metrics,
      log: deps.ctx.log,
      now: deps.now,
    }),
  ];
}

/**
 * True when the site's upstream lies outside the zones the site may reach. `gatehouse
 * check` refuses such a config; the proxy refuses such a request too (defense in depth).
 * Sites and upstreams without zones (a config that does not use zones) never violate.
 */
export function zoneViolation(site: SiteConfig): boolean {
  const zone = site.upstream?.zone;
  if (site.zones === undefined) return zone !== undefined;
  return zone === undefined || !site.zones.includes(zone);
}
