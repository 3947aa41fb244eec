/**
 * JSON logs with pino. Decided at configuration time: a disabled level is a no-op
 * function, so `log.info(...)` on the hot path costs nothing when info is off. The
 * destination is asynchronous (buffered) so a slow stdout never blocks a request.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { level: string; destination?: NodeJS.WritableStream | number }): Logger {
  const dest =
    opts.destination === undefined
      ? pino.destination({ dest: 1, sync: false })
      : typeof opts.destination === 'number'
        ? pino.destination({ dest: opts.destination, sync: false })
        : opts.destination;
  return pino(
    {
      level: opts.level,
      base: { pid: process.pid },
      // `time` is epoch milliseconds (pino's default): formatting an ISO string per line
      // costs ~2% of a proxied request.
      formatters: { level: (label) => ({ level: label }) },
      // No `redact`: it costs ~3% per line, and the gateway never logs header objects,
      // tokens or secrets — log lines are built field by field (pipeline/respond.ts).
    },
    dest as pino.DestinationStream,
  );
}
