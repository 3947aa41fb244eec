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
  ) {}

  /** True for the IP filter's answer: close the connection, write nothing. */
  get drop(): boolean {
    return this.code === 'ip_denied';
  }
}
