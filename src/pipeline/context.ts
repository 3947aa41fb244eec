/** Services shared by every runtime generation of one gateway (they survive reloads). */
import type { DenialLog } from '../observability/denial-log.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ExchangeObserver } from './observer.js';

export interface GatewayContext {
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly denials: DenialLog;
  readonly version: string;
  /** Called for every finished exchange (audit). Registered at start-up. */
  readonly observers: ExchangeObserver[];
  /** Set when shutdown begins: responses carry `Connection: close`. */
  draining: boolean;
  inflight: number;
  /** Called when in-flight reaches zero while draining. */
  onIdle: (() => void) | null;
}
