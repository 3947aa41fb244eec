/**
 * One member of an upstream pool: its undici dispatcher (one Pool per member, so each
 * member has its own connections and limits), the requests it has in flight (for
 * least_requests) and its health. Members outlive config generations (pools.ts keeps
 * them while a live config uses them), so a reload neither forgets that a member is down
 * nor drops its warm connections.
 *
 * Health is two signals, both needed to take traffic:
 * - passive: `failures` consecutive failed attempts eject the member for `backoff`, which
 *   doubles with every ejection that follows within `max_backoff` of the last return;
 * - active (optional): a GET of `path` every `interval`; `unhealthy_threshold` failing
 *   checks in a row take it out, `healthy_threshold` passing ones bring it back.
 * Every change of the combined state is one log event (through the dependency states) and
 * the `gatehouse_upstream_healthy` gauge (docs/operations.md#upstream-pools).
 */
import type { Dispatcher } from 'undici';
import type { UpstreamConfig } from '../../config/schema.js';
import type { DependencyStates } from '../../observability/dependency-state.js';
import type { Metrics } from '../../observability/metrics.js';
import { upstreamHealthReporter, type UpstreamHealthReporter } from './health-events.js';
import type { MemberSpec } from './members.js';

/** Why an attempt failed; `connect_failure` means nothing reached the upstream. */
export type FailureReason = 'connect_failure' | 'reset_before_response' | 'timeout' | 'tls' | 'status_502' | 'status_503' | 'status_504' | 'error';

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNABORTED']);
const RESETS = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

/** Classifies an undici error of an attempt that got no response. */
export function failureReason(err: unknown): FailureReason {
  const code = (err as { code?: string } | null)?.code;
  if (code === undefined) return 'error';
  if (CONNECT_FAILURES.has(code)) return 'connect_failure';
  if (RESETS.has(code)) return 'reset_before_response';
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return 'timeout';
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code.includes('CERT') || code === 'HOSTNAME_MISMATCH') return 'tls';
  return 'error';
}

export interface MemberDeps {
  readonly metrics: Metrics;
  readonly dependencies: DependencyStates;
}

export class UpstreamMember {
  readonly id: string;
  readonly site: string;
  readonly basePath: string;
  readonly dispatcher: Dispatcher;
  /** Attempts sent and not finished yet. */
  inflight = 0;
  private consecutive = 0;
  private ejected = false;
  private ejections = 0;
  private returnedAt = 0;
  private ejectTimer: NodeJS.Timeout | null = null;
  private activeUp = true;
  private passing = 0;
  private failing = 0;
  private checkTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly passive: UpstreamConfig['health']['passive'];
  private readonly active: UpstreamConfig['health']['active'];
  private readonly requests: { inc(): void };
  private readonly health: UpstreamHealthReporter;

  constructor(
    site: string,
    spec: MemberSpec,
    u: UpstreamConfig,
    dispatcher: Dispatcher,
    private readonly deps: MemberDeps,
  ) {
    this.id = spec.id;
    this.site = site;
    this.basePath = spec.basePath;
    this.dispatcher = dispatcher;
    this.passive = u.health.passive;
    this.active = u.health.active;
    this.requests = deps.metrics.upstreamRequests.labels(site, spec.id);
    deps.metrics.upstreamHealthy.labels(site, spec.id).set(1);
    this.health = upstreamHealthReporter(deps.dependencies, site, spec.id);
    if (this.active !== undefined) this.schedule(0);
  }

  /** Takes traffic: not ejected and (with active checks) passing them. */
  get healthy(): boolean {
    return !this.ejected && this.activeUp;
  }

  /** An attempt is being sent to this member. */
  started(): void {
    this.inflight++;
    this.requests.inc();
  }

  /** The attempt got an answer that is not a gateway failure. */
  succeeded(): void {
    this.inflight--;
    this.consecutive = 0;
  }

  /** The attempt failed (no answer, or 502/503/504); counts toward ejection. */
  failed(reason: FailureReason): void {
    this.inflight--;
    this.deps.metrics.upstreamFailures.labels(this.site, this.id, reason).inc();
    // Attempts already under way when the member went out say nothing new.
    if (this.ejected || this.closed) return;
    if (++this.consecutive >= this.passive.failures) this.eject(reason);
  }

  /** The attempt ended for a reason that says nothing about the member (the client left, a body limit). */
  abandoned(): void {
    this.inflight--;
  }

  private eject(reason: FailureReason): void {
    const now = Date.now();
    if (now - this.returnedAt > this.passive.max_backoff) this.ejections = 0;
    const ms = Math.min(this.passive.backoff * 2 ** Math.min(this.ejections, 30), this.passive.max_backoff);
    this.ejections++;
    const was = this.healthy;
    this.ejected = true;
    this.consecutive = 0;
    this.deps.metrics.upstreamEjections.labels(this.site, this.id).inc();
    this.ejectTimer = setTimeout(() => {
      this.ejectTimer = null;
      this.ejected = false;
      this.returnedAt = Date.now();
      if (this.healthy) this.changed(true, 'passive', null);
    }, ms);
    this.ejectTimer.unref();
    if (was) this.changed(false, 'passive', reason, ms);
  }

  private changed(healthy: boolean, source: 'passive' | 'active', reason: string | null, backoffMs?: number): void {
    if (this.closed) return;
    this.deps.metrics.upstreamHealthy.labels(this.site, this.id).set(healthy ? 1 : 0);
    this.health.report({ healthy, source, reason, backoffMs });
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.checkTimer = setTimeout(() => {
      this.checkTimer = null;
      void this.check().finally(() => this.schedule((this.active as NonNullable<typeof this.active>).interval));
    }, ms);
    this.checkTimer.unref();
  }

  /** One active health check: GET base path + `path`, within `timeout`, answered with an expected status. */
  private async check(): Promise<void> {
    const a = this.active;
    if (a === undefined || this.closed) return;
    let reason: string | null = null;
    try {
      const res = await this.dispatcher.request({
        path: this.basePath + a.path,
        method: 'GET',
        headers: { 'user-agent': 'gatehouse-health-check' },
        headersTimeout: a.timeout,
        bodyTimeout: a.timeout,
        signal: AbortSignal.timeout(a.timeout),
      });
      await res.body.dump();
      if (!a.expected_status.includes(res.statusCode)) reason = `status_${res.statusCode}`;
    } catch (err) {
      reason = (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError' ? 'timeout' : failureReason(err);
    }
    if (this.closed) return;
    if (reason === null) {
      this.failing = 0;
      if (!this.activeUp && ++this.passing >= a.healthy_threshold) {
        this.activeUp = true;
        if (this.healthy) this.changed(true, 'active', null);
      }
    } else {
      this.passing = 0;
      if (this.activeUp && ++this.failing >= a.unhealthy_threshold) {
        const was = this.healthy;
        this.activeUp = false;
        if (was) this.changed(false, 'active', reason);
      }
    }
  }

  /** Stops the timers and forgets the member's gauge; the pool's connections are closed by the cache. */
  close(): void {
    this.closed = true;
    if (this.ejectTimer !== null) clearTimeout(this.ejectTimer);
    if (this.checkTimer !== null) clearTimeout(this.checkTimer);
    this.deps.metrics.upstreamHealthy.remove(this.site, this.id);
    this.health.forget();
  }
}
