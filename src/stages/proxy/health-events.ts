/**
 * Health changes of an upstream pool member go through the gateway's dependency states
 * (src/observability/dependency-state.ts): one `upstream_unhealthy` (warn) or
 * `upstream_healthy` (info) line per change, and the dependency metrics, under the id
 * `upstream:<site>:<member id>`. The fields are what docs/operations.md lists.
 */
import type { DependencyHandle, DependencyStates } from '../../observability/dependency-state.js';

const EVENTS = { down: 'upstream_unhealthy', up: 'upstream_healthy' } as const;

export interface UpstreamHealthChange {
  readonly healthy: boolean;
  /** What decided: `passive` (consecutive failures, back-off over) or `active` (the health check). */
  readonly source: 'passive' | 'active';
  /** Why it went out (the last failure reason), or null when it came back. */
  readonly reason: string | null;
  /** Passive ejections: how long this one lasts. */
  readonly backoffMs?: number;
}

export interface UpstreamHealthReporter {
  report(c: UpstreamHealthChange): void;
  /** The member is gone (a reload removed it): its dependency state is forgotten. */
  forget(): void;
}

export function upstreamHealthReporter(deps: DependencyStates, site: string, upstream: string): UpstreamHealthReporter {
  const id = `upstream:${site}:${upstream}`;
  const h: DependencyHandle = deps.dependency(id, { events: EVENTS, describe: `upstream ${upstream} of site ${site}` });
  // Members start in service: the first report sets the gauge without a log line.
  h.up();
  return {
    report(c) {
      if (c.healthy) h.up({ site, upstream, source: c.source });
      else h.down(undefined, { site, upstream, source: c.source, reason: c.reason, ...(c.backoffMs !== undefined ? { backoff_ms: c.backoffMs } : {}) });
    },
    forget: () => deps.forget(id),
  };
}
