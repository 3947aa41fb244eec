/** Services shared by every runtime generation of one gateway (they survive reloads). */
import type { DenialLog } from '../observability/denial-log.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

export interface GatewayContext {
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly denials: DenialLog;
  readonly version: string;
  /** Set when shutdown begins: responses carry `Connection: close`. */
  draining: boolean;
  inflight: number;
  /** Called when in-flight reaches zero while draining. */
  onIdle: (() => void) | null;
}
