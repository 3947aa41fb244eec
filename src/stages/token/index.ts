/**
 * The token stage (`token`): a site (or some of its path classes) with an `auth` block
 * requires a bearer JWT. Order of work, cheapest first: header shape and size (no
 * parsing of an oversize header), then the verified-token cache (SHA-256 of the token),
 * and only on a miss the signature check with jose. Revocation and suspension are not
 * decided here and not cached: the next stages check them on every request.
 *
 * Refusals are 401 with `WWW-Authenticate: Bearer` naming `invalid_request` (no usable
 * bearer credential) or `invalid_token`; the response says nothing more than the code.
 */
import { createHash } from 'node:crypto';
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

const REQ = ['WWW-Authenticate', 'Bearer realm="gatehouse", error="invalid_request"'];
const INV = ['WWW-Authenticate', 'Bearer realm="gatehouse", error="invalid_token"'];
const MISSING = new Refusal('missing_token', TOKEN, undefined, REQ);

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
  const cache = new TokenCache<VerifiedToken>(opts.auth.cache_entries);
  const verifierOpts = { issuers, claims: opts.auth.claims, maxLifetimeMs: opts.maxLifetimeMs, now };
  const m = opts.metrics.tokenVerifications;
  const counted = { cached: m.labels(opts.siteId, 'cached'), verified: m.labels(opts.siteId, 'verified') };
  const count = (result: string) => m.labels(opts.siteId, result).inc();

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
      const a = bearerToken(ex.req.rawHeaders, maxTokenBytes);
      if (a.kind === 'missing') {
        count('missing_token');
        return MISSING;
      }
      if (a.kind === 'malformed') {
        count('invalid_token');
        return new Refusal('invalid_token', TOKEN, undefined, REQ, a.reason);
      }
      const key = createHash('sha256').update(a.token).digest('base64');
      const hit = cache.get(key, now());
      // A cached token stays good only while its key is still configured (rotation out).
      if (hit !== undefined && findKey(hit.issuer, hit.kid) !== undefined) {
        counted.cached.inc();
        return accept(ex, hit);
      }
      if (!looksLikeJws(a.token)) {
        count('invalid_token');
        return new Refusal('invalid_token', TOKEN, undefined, INV, 'not a compact JWS');
      }
      return verifyToken(a.token, verifierOpts).then(
        (v) => {
          counted.verified.inc();
          cache.set(key, v);
          return accept(ex, v);
        },
        (err: unknown) => refusal(err),
      );
    },
  };
}
