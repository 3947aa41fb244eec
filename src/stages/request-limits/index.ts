/**
 * Request limits that need the parsed request: header count (431) and a declared body
 * size over the site's limit (413). Header *bytes* are bounded earlier by the HTTP
 * parser (`http.max_header_bytes`, answered 431 in server/client-errors.ts), and a body
 * without a declared length is counted while it streams (stages/proxy) — so an upload
 * can never exceed the limit by lying about its size.
 */
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { Stage } from '../../pipeline/stage.js';

export const REQUEST_LIMITS = 'request_limits';

export function createRequestLimitsStage(opts: { maxHeaders: number; maxBodyBytes: number }): Stage {
  const tooManyHeaders = new Refusal('headers_too_large', REQUEST_LIMITS, 'max_headers');
  const bodyTooLarge = new Refusal('body_too_large', REQUEST_LIMITS, 'max_body_bytes');
  const maxRaw = opts.maxHeaders * 2;
  const maxBody = opts.maxBodyBytes;
  return {
    id: REQUEST_LIMITS,
    run: function requestLimits(ex: Exchange) {
      const req = ex.req;
      if (req.rawHeaders.length > maxRaw) return tooManyHeaders;
      const cl = req.headers['content-length'];
      // Node's parser has already rejected malformed or conflicting Content-Length values.
      if (cl !== undefined && Number(cl) > maxBody) return bodyTooLarge;
      return undefined;
    },
  };
}
