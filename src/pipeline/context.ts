/** Services shared by every runtime generation of one gateway (they survive reloads). */
import type { DenialLog } from '../observability/denial-log.js';
import type { DependencyStates } from '../observability/dependency-state.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Exchange } from './exchange.js';
import type { ExchangeObserver } from './observer.js';

export interface GatewayContext {
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly denials: DenialLog;
  /** Up/down state of every dependency: one log event and metric per change (docs/operations.md#dependency-states). */
  readonly dependencies: DependencyStates;
  readonly version: string;
  /** Called for every finished exchange (audit). Registered at start-up. */
  readonly observers: ExchangeObserver[];
  /**
   * Awaited before a response is written (refusals and the proxy's response head), when
   * set: the sync audit mode makes the record durable here. A rejection turns the answer
   * into 503 audit_unavailable. null costs nothing.
   */
  beforeRespond: ((ex: Exchange) => Promise<void>) | null;
  /** Called for connections the global IP filter closes before any request (no exchange exists). */
  onConnectionDrop: ((peerIp: string, rule: string) => void) | null;
  /** Set when shutdown begins: responses carry `Connection: close`. */
  draining: boolean;
  inflight: number;
  /** Called when in-flight reaches zero while draining. */
  onIdle: (() => void) | null;
}
