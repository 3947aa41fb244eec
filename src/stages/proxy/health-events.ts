/**
 * Health changes of an upstream pool member, as log events. One function, so that the
 * general dependency-state reporting (src/observability) can take it over without touching
 * the pools: the event names `upstream_unhealthy` (warn) and `upstream_healthy` (info) and
 * their fields stay what docs/operations.md lists.
 */
import type { Logger } from '../../observability/logger.js';

export interface UpstreamHealthChange {
  readonly site: string;
  readonly upstream: string;
  readonly healthy: boolean;
  /** What decided: `passive` (consecutive failures, back-off over) or `active` (the health check). */
  readonly source: 'passive' | 'active';
  /** Why it went out (the last failure reason), or null when it came back. */
  readonly reason: string | null;
  /** Passive ejections: how long this one lasts. */
  readonly backoffMs?: number;
}

export function reportUpstreamHealth(log: Logger, c: UpstreamHealthChange): void {
  if (c.healthy) {
    log.info({ event: 'upstream_healthy', site: c.site, upstream: c.upstream, source: c.source }, 'upstream back in service');
  } else {
    log.warn(
      { event: 'upstream_unhealthy', site: c.site, upstream: c.upstream, source: c.source, reason: c.reason, backoff_ms: c.backoffMs },
      'upstream taken out of service',
    );
  }
}
