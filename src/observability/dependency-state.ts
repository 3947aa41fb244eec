/**
 * Dependency states: the one place that turns "a store / fetch / upstream went away or came
 * back" into exactly one log line and a metric (docs/operations.md#dependency-states).
 *
 * Every part of the gateway that depends on something outside the process (the rate-limit
 * and token-budget stores, the revocation set, the identity registry, the audit store, a
 * JWKS URL, an upstream's health, certificate renewal) reports its state here as often as it
 * likes — on every command, every poll, every client event. Only a change is logged and
 * counted, so a Redis outage under load is one `warn` and its recovery one `info`, not one
 * line per request or per reconnect attempt.
 *
 * Log scheme (one for every dependency): `event: "dependency_down"` at `warn` and
 * `event: "dependency_up"` at `info`, with `dependency: "<id>"` (the metric label) and
 * `kind` (the part of the id before the first ':'). A kind may keep its own event names
 * where they were documented before (upstream health: `upstream_unhealthy` /
 * `upstream_healthy`); the fields and the metric stay the same.
 *
 * Ids are bounded by the config: `rate_limit_store`, `token_budget_store`, `revocation_set`,
 * `identity_registry`, `audit_store`, `jwks:<url>`, `upstream:<site>:<origin>`,
 * `certificate:<name>`.
 *
 * Metrics: `gatehouse_dependency_up{dependency}` (1 up, 0 down) and
 * `gatehouse_dependency_transitions_total{dependency,state}` (state = down | up).
 *
 * The first report of a dependency sets its gauge; it is logged (and counted) only when it
 * is down — a gateway that starts with Redis unreachable says so once.
 */
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface DependencyEvents {
  /** Event name logged at warn when the dependency goes down (default `dependency_down`). */
  readonly down: string;
  /** Event name logged at info when it recovers (default `dependency_up`). */
  readonly up: string;
}

/** What one part of the gateway holds to report on one dependency. Cheap when nothing changes. */
export interface DependencyHandle {
  readonly id: string;
  /** The dependency works (a command succeeded, a poll found it current). */
  up(fields?: Record<string, unknown>): void;
  /** It does not; `err` goes into the log line (an Error's message or a string, never a secret). */
  down(err?: unknown, fields?: Record<string, unknown>): void;
  /** Last reported state; undefined before the first report. */
  readonly state: boolean | undefined;
}

export interface DependencyStates {
  /** The handle for `id` (the same object for the same id). `events` fixes its log names on first use. */
  dependency(id: string, opts?: { events?: DependencyEvents; describe?: string }): DependencyHandle;
  /** Reports a state for `id` (shorthand for `dependency(id)[up ? 'up' : 'down'](err)`). */
  report(id: string, up: boolean, err?: unknown, fields?: Record<string, unknown>): void;
  /** Drops a dependency that no longer exists (removed by a reload): its gauge disappears. */
  forget(id: string): void;
  /** Every known dependency and its state (admin status, tests). */
  snapshot(): Record<string, boolean>;
}

export const DEFAULT_EVENTS: DependencyEvents = { down: 'dependency_down', up: 'dependency_up' };

/** Error text for a log field: the message only, bounded, never an object that could carry a secret. */
function errText(err: unknown): string | undefined {
  if (err === undefined || err === null) return undefined;
  const s = err instanceof Error ? err.message : String(err);
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

export function createDependencyStates(log: Logger, metrics: Pick<Metrics, 'dependencyUp' | 'dependencyTransitions'>, now: () => number = Date.now): DependencyStates {
  const handles = new Map<string, Handle>();

  class Handle implements DependencyHandle {
    state: boolean | undefined = undefined;
    private since = 0;
    private readonly gauge;
    constructor(
      readonly id: string,
      private readonly events: DependencyEvents,
      private readonly describe: string,
    ) {
      this.gauge = metrics.dependencyUp.labels(id);
    }

    up(fields?: Record<string, unknown>): void {
      if (this.state === true) return;
      const was = this.state;
      this.state = true;
      this.gauge.set(1);
      if (was === undefined) {
        this.since = now();
        return;
      }
      const t = now();
      metrics.dependencyTransitions.labels(this.id, 'up').inc();
      log.info({ event: this.events.up, dependency: this.id, kind: kindOf(this.id), down_ms: t - this.since, ...fields }, `${this.describe} is available again`);
      this.since = t;
    }

    down(err?: unknown, fields?: Record<string, unknown>): void {
      if (this.state === false) return;
      this.state = false;
      this.gauge.set(0);
      this.since = now();
      metrics.dependencyTransitions.labels(this.id, 'down').inc();
      const e = errText(err);
      log.warn({ event: this.events.down, dependency: this.id, kind: kindOf(this.id), ...(e !== undefined ? { err: e } : {}), ...fields }, `${this.describe} is unavailable; what needs it fails closed`);
    }
  }

  function dependency(id: string, opts: { events?: DependencyEvents; describe?: string } = {}): DependencyHandle {
    let h = handles.get(id);
    if (h === undefined) {
      h = new Handle(id, opts.events ?? DEFAULT_EVENTS, opts.describe ?? id);
      handles.set(id, h);
    }
    return h;
  }

  return {
    dependency,
    report(id, up, err, fields) {
      const h = dependency(id);
      if (up) h.up(fields);
      else h.down(err, fields);
    },
    forget(id) {
      if (!handles.delete(id)) return;
      metrics.dependencyUp.remove(id);
    },
    snapshot() {
      const out: Record<string, boolean> = {};
      for (const [id, h] of handles) if (h.state !== undefined) out[id] = h.state;
      return out;
    },
  };
}

function kindOf(id: string): string {
  const i = id.indexOf(':');
  return i < 0 ? id : id.slice(0, i);
}

/**
 * Reports an ioredis client's connection state on `handles`: down when the connection
 * closes or an error is emitted (each reconnect attempt repeats it; only the first counts),
 * up when it is ready. Failed commands on an open connection (a paused server, a command
 * timeout) are reported by the store that ran them.
 */
export function watchRedisConnection(client: import('ioredis').Redis, handles: readonly DependencyHandle[]): void {
  const down = (err?: unknown) => {
    for (const h of handles) h.down(err ?? 'connection closed');
  };
  client.on('ready', () => {
    for (const h of handles) h.up();
  });
  client.on('error', (err: Error) => down(err));
  client.on('close', () => {
    // A close on a client that is being shut down (quit/disconnect by its owner) is not an outage.
    if ((client as unknown as { manuallyClosing?: boolean }).manuallyClosing === true || client.status === 'end') return;
    down();
  });
}
