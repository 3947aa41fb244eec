/**
 * The token stage (`token`): a site (or some of its path classes) with an `auth` block
 * requires a bearer JWT. Order of work, cheapest first: header shape and size (no
 * parsing of an oversize header), then the verified-token cache (SHA-256 of the token),
 * and only on a miss the signature check with jose. Revocation and suspension are not
 * decided here and not cached: the next stages check them on every request.
 *
 * Answers follow RFC 6750 §3.1: no credential (no Authorization, or another scheme) is
 * 401 `missing_token` with `WWW-Authenticate: Bearer realm="gatehouse"` and no error
 * code; an Authorization that cannot be read as one bearer credential (two of them,
 * oversize, an empty Bearer) is 400 `malformed_authorization` with
 * `error="invalid_request"`; a credential that fails verification is 401 with
 * `error="invalid_token"`. The response says nothing more than the code.
 */
import { hash } from 'node:crypto';
import type { AuthConfig, SiteAuthConfig } from '../../config/schema.js';
import { compilePathPatterns } from '../../http/path.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { Stage } from '../../pipeline/stage.js';
import { bearerToken, looksLikeJws } from './authorization.js';
import { TokenCache } from './cache.js';
import { findKey, TokenError, verifyToken, type CompiledIssuer, type VerifiedToken } from './verifier.js';

export const TOKEN = 'token';

const CHALLENGE = ['WWW-Authenticate', 'Bearer realm="gatehouse"'];
const REQ = ['WWW-Authenticate', 'Bearer realm="gatehouse", error="invalid_request"'];
const INV = ['WWW-Authenticate', 'Bearer realm="gatehouse", error="invalid_token"'];
const MISSING = new Refusal('missing_token', TOKEN, undefined, CHALLENGE);
const NOT_JWS = new Refusal('invalid_token', TOKEN, undefined, INV, 'not a compact JWS');

export interface TokenStageOptions {
  readonly siteId: string;
  readonly site: SiteAuthConfig;
  readonly auth: AuthConfig;
  /** Every compiled issuer by id (the site picks its own). */
  readonly issuers: ReadonlyMap<string, CompiledIssuer>;
  readonly maxLifetimeMs: number;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly now?: () => number;
}

export function createTokenStage(opts: TokenStageOptions): Stage {
  const now = opts.now ?? Date.now;
  const ids = opts.site.issuers ?? [...opts.issuers.keys()];
  const issuers = ids.map((id) => {
    const i = opts.issuers.get(id);
    if (i === undefined) throw new Error(`unknown issuer ${id}`);
    return i;
  });
  const matches = opts.site.paths ? compilePathPatterns(opts.site.paths) : null;
  const maxTokenBytes = opts.auth.max_token_bytes;
  const apiKeyHeader = opts.site.api_key_header;
  const cache = new TokenCache<VerifiedToken>(opts.auth.cache_entries);
  const verifierOpts = { issuers, claims: opts.auth.claims, maxLifetimeMs: opts.maxLifetimeMs, now };
  const m = opts.metrics.tokenVerifications;
  const counted = { cached: m.labels(opts.siteId, 'cached'), verified: m.labels(opts.siteId, 'verified') };
  // Refusals of bad input are counted too and should cost next to nothing: the label
  // child of each result (a small fixed set of codes) and the Refusal of each header
  // problem (a few constants, see authorization.ts) are made once, not per request.
  const children = new Map<string, { inc(): void }>();
  const count = (result: string): void => {
    let c = children.get(result);
    if (c === undefined) {
      c = m.labels(opts.siteId, result);
      children.set(result, c);
    }
    c.inc();
  };
  const missingOther = new Map<string, Refusal>();
  const missingRefusal = (reason: string | undefined): Refusal => {
    if (reason === undefined) return MISSING;
    let r = missingOther.get(reason);
    if (r === undefined) {
      r = new Refusal('missing_token', TOKEN, undefined, CHALLENGE, reason);
      missingOther.set(reason, r);
    }
    return r;
  };
  const malformed = new Map<string, Refusal>();
  const malformedRefusal = (reason: string): Refusal => {
    let r = malformed.get(reason);
    if (r === undefined) {
      r = new Refusal('malformed_authorization', TOKEN, undefined, REQ, reason);
      malformed.set(reason, r);
    }
    return r;
  };
  // Cache hits are the steady state. prom-client's labelled inc() hashes the label set on
  // every call (about 0.5 µs, a quarter of a whole cache hit), so hits are counted in a
  // plain integer and added to the counter by a timer armed by the first hit after a
  // flush: the metric lags by at most one second and drops no hit while the process
  // runs. The timer is unref'd so it never holds the process open; a stage of an old
  // config generation flushes once more and then arms nothing.
  let pendingCached = 0;
  const flushCached = (): void => {
    const n = pendingCached;
    pendingCached = 0;
    if (n > 0) counted.cached.inc(n);
  };

  function accept(ex: Exchange, v: VerifiedToken): undefined {
    ex.identity = v.identity;
    ex.token = v.facts;
    return undefined;
  }

  function refusal(err: unknown): Refusal {
    count(err instanceof TokenError ? err.code : 'internal_error');
    if (err instanceof TokenError) {
      // The reason (which check failed) is logged with the request, never sent.
      return new Refusal(err.code, TOKEN, undefined, err.code === 'token_keys_unavailable' ? undefined : INV, err.reason);
    }
    return new Refusal('internal_error', TOKEN, undefined, undefined, err);
  }

  return {
    id: TOKEN,
    run: function token(ex: Exchange) {
      if (matches !== null && !matches(ex.normPath)) return undefined;
      const a = bearerToken(ex.req.rawHeaders, maxTokenBytes, apiKeyHeader);
      if (typeof a !== 'string') {
        if (a.kind === 'missing') {
          count('missing_token');
          return missingRefusal(a.reason);
        }
        count('malformed_authorization');
        return malformedRefusal(a.reason);
      }
      // The whole token is hashed (a hostile token that differs from a cached one in any
      // byte, signature included, misses and goes to jose), once, with the one-shot
      // crypto.hash: createHash() builds a stream-like Hash object per call and costs
      // about twice as much. 'binary' (= latin1) output is the 32 digest bytes as a
      // 32-character string: the cheapest string to build and for the Map to hash and
      // compare. The input is encoded as UTF-8, which is not injective for every JS
      // string (lone surrogates all become U+FFFD), but every cached token is a verified
      // ASCII JWS and UTF-8 maps no other string onto an ASCII string's bytes (every
      // non-ASCII character becomes bytes >= 0x80), so only the token itself can hit.
      const key = hash('sha256', a, 'binary');
      const hit = cache.get(key, now());
      // A cached token stays good only while its key is still configured (rotation out).
      // File keys cannot change within a config generation (this cache lives exactly as
      // long as that generation's compiled issuers), so only JWKS-URL keys are looked up.
      if (hit !== undefined && (hit.staticKey || findKey(hit.issuer, hit.kid) !== undefined)) {
        if (pendingCached++ === 0) setTimeout(flushCached, 1000).unref();
        return accept(ex, hit);
      }
      if (!looksLikeJws(a)) {
        count('invalid_token');
        return NOT_JWS;
      }
      return verifyToken(a, verifierOpts).then(
        (v) => {
          counted.verified.inc();
          cache.set(key, v, now());
          return accept(ex, v);
        },
        (err: unknown) => refusal(err),
      );
    },
  };
}
