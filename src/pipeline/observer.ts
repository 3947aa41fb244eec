/**
 * Observers see every finished exchange — proxied, refused or dropped — exactly once,
 * after the response ended (or the connection closed). The audit trail is one. An
 * observer must not throw and must not block: slow work goes off the request path.
 */
import type { Exchange } from './exchange.js';

export interface ExchangeObserver {
  readonly id: string;
  finished(ex: Exchange, durationMs: number): void;
}
