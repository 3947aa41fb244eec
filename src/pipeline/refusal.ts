import type { ErrorCode } from '../errors/codes.js';

/**
 * What a stage returns when it refuses an exchange. Stages never write responses: the
 * pipeline turns a refusal into the one response shape (or, for `drop`, a closed
 * connection with zero bytes written).
 */
export class Refusal {
  constructor(
    readonly code: ErrorCode,
    /** The stage id that decided, e.g. `ip_filter`, `rate_limit`. */
    readonly stage: string,
    /** The rule id inside that stage (config key = metric label = log field), if any. */
    readonly rule: string | undefined = undefined,
    /** Extra response headers as a flat [name, value, name, value, ...] list. */
    readonly headers: readonly string[] | undefined = undefined,
    /** Internal cause for the log; never sent to the client. */
    readonly cause: unknown = undefined,
    /**
     * Close the connection with zero bytes written instead of answering (an unknown host
     * with `http.unknown_host: close`, a request not processed after a close). The IP
     * filter's drop is silent too, and also counted as a denial.
     */
    readonly silent: boolean = code === 'ip_denied',
  ) {}

  /** True for the IP filter's answer: close the connection, write nothing, count a denial. */
  get drop(): boolean {
    return this.code === 'ip_denied';
  }
}
