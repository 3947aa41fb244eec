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
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Defense in depth: if a header object ever reaches a log call, secrets in it are masked.
      redact: { paths: ['authorization', '*.authorization', 'headers.authorization', 'headers.cookie', 'password', '*.password'], censor: '[redacted]' },
    },
    dest as pino.DestinationStream,
  );
}
