/**
 * A per-exchange hook a stage can attach (`ex.hook`) when its work outlives the decision:
 * the LLM route (src/stages/llm) sets the upstream credential and the body length, reads
 * usage from the answer as it streams, and charges it once the exchange is over. The
 * proxy calls the hook at four points and the pipeline once at the end; with no hook
 * (every other site) nothing is called.
 */
import type { Exchange } from './exchange.js';

export interface UpstreamHook {
  /** The header list the proxy is about to send upstream (flat [name, value, ...]); returns the list to send. */
  requestHeaders(headers: string[]): string[];
  /** The upstream's status and headers, before anything reaches the client. */
  responseStart(status: number, headers: Readonly<Record<string, string | string[] | undefined>>): void;
  /** One body chunk from the upstream; returns the bytes for the client (null: none now). */
  responseData(chunk: Buffer): Buffer | null;
  /** The upstream's answer ended normally. */
  responseEnd(): void;
  /**
   * The exchange is over — answered, refused, failed or abandoned by the client. Called
   * exactly once, by `finish` (pipeline/respond.ts), before the log line and the observers
   * (audit) read the exchange. Must not throw.
   */
  finish(ex: Exchange): void;
}
