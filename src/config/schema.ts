/**
 * The configuration schema: the single source of truth for keys, types and defaults.
 * Every object is strict (an unknown key is an error, so a typo never silently disables
 * a control). Units are parsed here, so the rest of the gateway sees milliseconds and
 * bytes. Cross-field rules (unique ids, CIDRs, listen addresses, ...) live in
 * `validate.ts`, which reports every problem with its path.
 */
import { z } from 'zod';
import { parseDuration, parseSize } from './units.js';

const duration = (def: string) =>
  z
    .union([z.string(), z.number()])
    .default(def)
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms === null) {
        ctx.addIssue({ code: 'custom', message: `invalid duration ${JSON.stringify(v)} (use e.g. 250ms, 10s, 1m)` });
        return z.NEVER;
      }
      return ms;
    });

const size = (def: string) =>
  z
    .union([z.string(), z.number()])
    .default(def)
    .transform((v, ctx) => {
      const n = parseSize(v);
      if (n === null) {
        ctx.addIssue({ code: 'custom', message: `invalid size ${JSON.stringify(v)} (use e.g. 16KiB, 10MiB or a byte count)` });
        return z.NEVER;
      }
      return n;
    });

/** Ids appear in metric labels, log fields, store keys and audit records: keep them tame. */
export const ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const id = z.string().regex(ID, 'must match ^[a-z0-9][a-z0-9_-]{0,62}$ (lowercase letters, digits, _ and -)');

const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a valid HTTP header name');
// Printable ASCII only: a non-ASCII character has no single byte form (Node writes header
// strings as latin1, a YAML author means UTF-8), so it is refused rather than re-encoded.
const headerValue = z.string().regex(/^[\t\x20-\x7e]*$/, 'header values may hold printable ASCII, spaces and tabs only');

const headersBlock = z.strictObject({
  /** Set (overwrite) these response headers on every response of the site. */
  set: z.record(headerName, headerValue).default({}),
  /** Remove these response headers (e.g. X-Powered-By from the upstream). */
  remove: z.array(headerName).default([]),
});

/** An HTTP token (RFC 9110 §5.6.2), e.g. an Upgrade protocol name. */
const token = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not an HTTP token');

/**
 * How a site reads requests where upstream frameworks disagree (docs/lifecycle.md#one-reading).
 * `http.request` holds the defaults; a site's `request` block overrides single keys.
 */
const requestReadingFields = {
  /** `%2F`, `%5C`, `%2E` and double encodings in the path: refuse (400), decode and forward decoded, or keep (no path-based control may apply). */
  escaped_path: z.enum(['reject', 'decode', 'keep']),
  /** `;` parameters in path segments: forwarded as received, or refused (400). */
  path_parameters: z.enum(['keep', 'reject']),
  /** Header names containing `_` (CGI/WSGI read them as `-`): dropped, refused (400), or forwarded unless they spell a header gatehouse sets. */
  header_underscores: z.enum(['drop', 'reject', 'allow']),
  /** Upgrade protocols that may become a tunnel (case-insensitive); any other Upgrade is ignored. */
  upgrades: z.array(token),
};

const requestReadingDefaults = z
  .strictObject({
    escaped_path: requestReadingFields.escaped_path.default('reject'),
    path_parameters: requestReadingFields.path_parameters.default('keep'),
    header_underscores: requestReadingFields.header_underscores.default('drop'),
    upgrades: requestReadingFields.upgrades.default(['websocket']),
  })
  .prefault({});

const requestReadingOverrides = z.strictObject({
  escaped_path: requestReadingFields.escaped_path.optional(),
  path_parameters: requestReadingFields.path_parameters.optional(),
  header_underscores: requestReadingFields.header_underscores.optional(),
  upgrades: requestReadingFields.upgrades.optional(),
});

const ipFilter = z.strictObject({
  allow: z.array(z.string()).optional(),
  deny: z.array(z.string()).default([]),
});

const rateRule = z.strictObject({
  id,
  limit: z.number().int().min(1).max(1_000_000_000),
  window: duration('1m').pipe(z.number().int().min(1000, 'window must be at least 1s').max(86_400_000, 'window must be at most 1d')),
  /** Optional path classes (`/exact` or `/prefix*`), matched on the normalized path. */
  paths: z.array(z.string()).optional(),
  /** Count and log what would be refused; refuse nothing. */
  shadow: z.boolean().default(false),
  /** What to do when the rate-limit store cannot decide. */
  on_store_error: z.enum(['refuse', 'allow']).default('refuse'),
});

/** One member of an upstream pool in its long form (docs/configuration.md#upstream-pools). */
const upstreamMember = z.strictObject({
  url: z.string(),
  /** The id in metrics, log events and health state; default from the URL's host and port (e.g. `127-0-0-1-3000`). */
  id: id.optional(),
  /** Share of the traffic relative to the other members (round_robin, least_requests, hash). */
  weight: z.number().int().min(1).max(1000).default(1),
});

/** Failures after which a request may be sent to another member (docs/lifecycle.md#retries). */
export const RETRY_ON = ['connect_failure', 'reset_before_response', 'status_502', 'status_503', 'status_504'] as const;

const upstreamRetry = z.strictObject({
  /** Further attempts per request after the first, each on a member not tried yet. */
  max: z.number().int().min(0).max(10).default(2),
  /** Retries per site may add at most this share to the requests of the last 10 s (the retry budget)... */
  budget_ratio: z.number().min(0).max(1).default(0.2),
  /** ...but this many retries per 10 s are always allowed (a quiet site still retries). */
  budget_min: z.number().int().min(0).max(1_000_000).default(10),
  /** Which failures are retried; connect_failure for any request, the others only for a request that can be repeated. */
  on: z.array(z.enum(RETRY_ON)).default(['connect_failure', 'reset_before_response']),
});

const upstreamPassiveHealth = z.strictObject({
  /** Consecutive failures (connect, reset, timeout, 502/503/504) that take a member out. */
  failures: z.number().int().min(1).max(1000).default(5),
  /** How long the first ejection lasts; each further one in a row doubles it. */
  backoff: duration('10s').pipe(z.number().int().min(100).max(3_600_000)),
  /** The longest ejection; a member in service this long without one starts again from `backoff`. */
  max_backoff: duration('5m').pipe(z.number().int().min(100).max(86_400_000)),
});

const upstreamActiveHealth = z.strictObject({
  /** GET this path on every member (with the member's base path in front). */
  path: z.string().regex(/^\/[!$&'()*+,;=:@A-Za-z0-9._~%/-]*(\?[!$&'()*+,;=:@A-Za-z0-9._~%/?-]*)?$/, 'an origin-form path (and query), e.g. /healthz').default('/'),
  interval: duration('10s').pipe(z.number().int().min(100).max(3_600_000)),
  timeout: duration('2s').pipe(z.number().int().min(50).max(600_000)),
  /** Statuses that count as healthy. */
  expected_status: z.array(z.number().int().min(100).max(599)).min(1).default([200]),
  /** Consecutive passing checks that bring an unhealthy member back. */
  healthy_threshold: z.number().int().min(1).max(100).default(2),
  /** Consecutive failing checks that take a member out. */
  unhealthy_threshold: z.number().int().min(1).max(100).default(3),
});

const upstream = z.strictObject({
  /** Members of the pool: `scheme://host:port[/base/path]`, or `{ url, id, weight }`. */
  urls: z.array(z.union([z.string(), upstreamMember])).min(1, 'at least one upstream URL is required'),
  /** How a member is chosen for each request. */
  balance: z.enum(['round_robin', 'least_requests', 'hash']).default('round_robin'),
  /** With `balance: hash`: what is hashed — the resolved client IP, or a request header (`header:NAME`). */
  hash_on: z
    .string()
    .regex(/^(client_ip|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/, 'client_ip or header:NAME')
    .default('client_ip'),
  retry: upstreamRetry.prefault({}),
  health: z
    .strictObject({
      passive: upstreamPassiveHealth.prefault({}),
      /** Probe each member on a timer (off unless given). */
      active: upstreamActiveHealth.optional(),
    })
    .prefault({}),
  connect_timeout: duration('5s'),
  /** Time from sending the request to receiving the response headers → 504. */
  response_timeout: duration('30s'),
  /** Longest pause between two body chunks from the upstream (0 = none, for SSE). */
  idle_timeout: duration('5m'),
  keep_alive_timeout: duration('4s'),
  max_connections: z.number().int().min(1).max(100_000).default(256),
  /** Speak HTTP/2 to the upstream: ALPN `h2` for https:// URLs, prior knowledge (h2c) for http:// (gRPC needs it). */
  http2: z.boolean().default(false),
  /** Network zone of this upstream (e.g. production, management); the site must list it in `zones` (docs/policy.md). */
  zone: id.optional(),
  /** Verification of https:// upstreams (docs/tls.md); the internal root is trusted by default when a `ca` block exists. */
  tls: z
    .strictObject({
      /** PEM bundle of trusted roots; replaces the default trust pool. */
      ca_file: z.string().optional(),
      /** Trust the internal CA's root (default: true when a `ca` block exists). */
      internal_ca: z.boolean().optional(),
      /** Name checked against the upstream certificate's SANs and sent as SNI (default: the URL's host). */
      server_name: z.string().optional(),
      /** Present a client certificate (mTLS): issued and renewed by the internal CA, or from files. */
      client_cert: z.union([z.literal('internal'), z.strictObject({ cert_file: z.string(), key_file: z.string() })]).optional(),
    })
    .optional(),
});

const JWS_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

const issuerKey = z.strictObject({
  kid: z.string().min(1).max(256),
  /** PEM public key (SPKI); the gateway never holds a private key. */
  file: z.string(),
  /** Algorithm this key verifies; default from the key type (RSA → RS256, P-256 → ES256, Ed25519 → EdDSA). */
  alg: z.enum(JWS_ALGS).optional(),
});

const issuer = z.strictObject({
  id,
  /** Expected `iss` claim; enforced when set (required when a site accepts several issuers). */
  iss: z.string().min(1).optional(),
  /** Accepted `aud` values; enforced when set (the token must name at least one). */
  audiences: z.array(z.string().min(1)).min(1).optional(),
  /** PEM public keys selected by `kid`; list old and new during a rotation overlap. */
  keys: z.array(issuerKey).default([]),
  jwks_file: z.string().optional(),
  jwks_url: z.string().optional(),
  jwks_refresh: duration('5m'),
  /** How long keys from a JWKS URL stay usable when refreshing fails; then tokens get 503. */
  jwks_max_stale: duration('1h'),
  algorithms: z.array(z.enum(JWS_ALGS)).min(1).default(['RS256', 'ES256', 'EdDSA']),
  /** Accept tokens without `exp` (then valid at most revocation.max_token_lifetime after `iat`). */
  allow_missing_exp: z.boolean().default(false),
  leeway: duration('30s').pipe(z.number().int().min(0).max(300_000, 'leeway must be at most 5m')),
});

const claimMap = z.strictObject({
  subject: z.string().default('sub'),
  type: z.string().default('type'),
  role: z.string().default('role'),
  domain: z.string().default('domain'),
  agent: z.string().default('agent_id'),
});

const identityHeaders = z.strictObject({
  subject: headerName.default('X-Gatehouse-Subject'),
  type: headerName.default('X-Gatehouse-Identity-Type'),
  role: headerName.default('X-Gatehouse-Role'),
  domain: headerName.default('X-Gatehouse-Domain'),
  agent: headerName.default('X-Gatehouse-Agent'),
});

const siteAuth = z.strictObject({
  /** Issuer ids (from auth.issuers) whose tokens this site accepts; default all. */
  issuers: z.array(id).min(1).optional(),
  /** Path classes that need a token (`/exact`, `/prefix*`); default every path of the site. */
  paths: z.array(z.string()).optional(),
  /** Forward the caller's Authorization header upstream (default: removed). */
  pass_authorization: z.boolean().default(false),
  /** Also take the token from X-Api-Key (the header the Anthropic SDK sends its API key in); it is never forwarded. */
  api_key_header: z.boolean().default(false),
});

const policyFiles = z.array(z.string().min(1)).min(1, 'list at least one file, or leave the key out');

const sitePolicy = z.strictObject({
  /** The enforced set: Cedar policy files (relative to the config file); watched and reloaded on change. */
  files: policyFiles.optional(),
  /** The shadow set: evaluated, logged and counted beside `files`, never refusing (Envoy RBAC `shadow_rules`). */
  shadow_files: policyFiles.optional(),
  /**
   * Removed: `shadow: true` enforced only what the previous config generation enforced,
   * so after a restart it enforced nothing. Kept in the schema only to say what to use.
   */
  shadow: z
    .unknown()
    .optional()
    .superRefine((v, ctx) => {
      if (v !== undefined) ctx.addIssue({ code: 'custom', message: 'removed: keep the enforced set in `files` and put the set under evaluation in `shadow_files` (both survive a restart)' });
    }),
  /** Top-level fields of a JSON request body put into `context.body` (e.g. `model`); empty: the body is not read. */
  body_fields: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'a top-level JSON field name')).default([]),
  /**
   * The type of each body field in `context.body` (string, long, boolean; default string):
   * the policy schema declares it, and a body whose field has another JSON type is refused
   * (400 invalid_body, rule field_type), so what was validated is what is evaluated.
   */
  body_field_types: z.record(z.string(), z.enum(['string', 'long', 'boolean'])).default({}),
  /** Largest body read for body_fields; a larger body is refused (413). */
  max_body_bytes: size('64KiB').pipe(z.number().int().min(1).max(16_777_216)),
  /** Media types read as JSON for body_fields (lowercase `type/subtype`); a body of any other type is refused (415). */
  body_types: z.array(z.string().regex(/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/, 'a lowercase media type (type/subtype)')).min(1).default(['application/json']),
  /** Decisions remembered per policy generation (0: no cache). */
  cache_entries: z.number().int().min(0).max(10_000_000).default(10_000),
});

/** One budget: at most `tokens` LLM tokens in any sliding window of `window` (docs/llm.md#token-budgets). */
const llmBudget = z.strictObject({
  tokens: z.number().int().min(1).max(1e15),
  window: duration('1d').pipe(z.number().int().min(60_000, 'window must be at least 1m').max(366 * 86_400_000, 'window must be at most 366d')),
});

/** Who a grant applies to; every listed dimension must match (an empty match is everyone). */
const llmMatch = z.strictObject({
  subjects: z.array(z.string().min(1).max(256)).min(1).optional(),
  types: z.array(z.enum(['agent', 'human'])).min(1).optional(),
  roles: z.array(z.string().min(1).max(256)).min(1).optional(),
  domains: z.array(z.string().min(1).max(256)).min(1).optional(),
});

/** What an identity may do on an LLM site; the first grant whose `match` fits decides (docs/llm.md#grants). */
const llmGrant = z.strictObject({
  id,
  match: llmMatch.prefault({}),
  /** Public model names (keys of `llm.models`) this grant allows; `'*'` allows every listed model. */
  models: z.array(z.string().min(1).max(256)).min(1, 'a grant allows at least one model'),
  /** Tokens (prompt + completion) per sliding minute, per identity. */
  tokens_per_minute: z.number().int().min(1).max(1e15).optional(),
  /** Tokens per sliding day, per identity. */
  tokens_per_day: z.number().int().min(1).max(1e15).optional(),
  /** A third budget over a window of your choice (e.g. 30d), per identity. */
  budget: llmBudget.optional(),
  /** Cap on max_tokens / max_completion_tokens / max_output_tokens (the smaller of this and the model's). */
  max_output_tokens: z.number().int().min(1).max(10_000_000).optional(),
  /** Largest `n` (and `best_of`): choices per request. */
  max_n: z.number().int().min(1).max(128).default(1),
  /** Whether requests may declare tools (`tools`, `functions`). */
  tools: z.boolean().default(true),
});

const llmModel = z.strictObject({
  /** The model name the upstream gets; default the public name. A different name makes the public name an alias. */
  upstream: z.string().min(1).max(256).optional(),
  /** Cap on the output tokens a request may ask for on this model. */
  max_output_tokens: z.number().int().min(1).max(10_000_000).optional(),
});

/** Secret files by identity attribute value (subject, domain or role). */
const credentialFiles = z.record(z.string().min(1).max(256), z.string().min(1));

/** The LLM route (docs/llm.md): this site forwards OpenAI-compatible or Anthropic API calls. */
const siteLlm = z.strictObject({
  /** What the upstream speaks: its endpoints and how it takes a credential. */
  provider: z.enum(['openai', 'anthropic']).default('openai'),
  /** Largest request body read and parsed (the body is held in memory). */
  max_body_bytes: size('1MiB').pipe(z.number().int().min(1024).max(67_108_864)),
  /** Public model names the site serves (nothing else is forwarded), with aliases and caps. */
  models: z.record(z.string().min(1).max(256), llmModel.prefault({})),
  grants: z.array(llmGrant).min(1, 'an LLM site needs at least one grant'),
  /** A max_tokens above the cap: clamp it to the cap (rewrite) or refuse (403). */
  over_max_tokens: z.enum(['clamp', 'refuse']).default('clamp'),
  /** How the upstream credential is chosen (never the caller's, never implicit). */
  credentials: z.strictObject({
    /** Header the upstream reads its credential from; default by provider (openai: authorization as Bearer, anthropic: x-api-key). */
    header: z.enum(['authorization', 'x-api-key', 'api-key']).optional(),
    /** An identity's own credential: secret file per subject. */
    subjects: credentialFiles.default({}),
    /** Use the identity's credential stored encrypted in the identity registry (identities.credential_keys). */
    registry: z.boolean().default(false),
    /** Fallback for identities without their own credential, by domain (explicit; checked before roles). */
    domains: credentialFiles.default({}),
    /** Fallback by role. */
    roles: credentialFiles.default({}),
  }).prefault({}),
  /** Longest a reservation holds budget without being settled (a call that never ends, an instance that died). */
  reservation_timeout: duration('10m').pipe(z.number().int().min(1000).max(86_400_000)),
});

export const siteSchema = z.strictObject({
  id,
  hosts: z.array(z.string().min(1)).min(1, 'a site serves at least one host'),
  path_prefix: z.string().default('/'),
  /** Remove this leading path (path_prefix or a part of it) before forwarding (docs/lifecycle.md#strip_prefix). */
  strip_prefix: z.string().optional(),
  /** Where requests go; a site has exactly one of `upstream` and `redirect`. */
  upstream: upstream.optional(),
  /** Answer every admitted request with a redirect instead of proxying it. */
  redirect: z
    .strictObject({
      /** Target URL or absolute path; `{path}`, `{query}` (with its `?`) and `{uri}` are replaced with the request's. */
      to: z.string().min(1),
      status: z.union([z.literal(301), z.literal(302), z.literal(307), z.literal(308)]).default(308),
    })
    .optional(),
  ip_filter: ipFilter.optional(),
  max_body_bytes: size('10MiB'),
  rate_limits: z.array(rateRule).default([]),
  /** Key IPv6 clients by this prefix length (one client usually holds a whole /64). */
  rate_limit_ipv6_prefix: z.number().int().min(32).max(128).default(64),
  headers: headersBlock.optional(),
  /** Bearer-token authentication for this site (docs/identity.md). */
  auth: siteAuth.optional(),
  /** Zones this site may reach; its upstream's `zone` must be one of them (docs/policy.md). */
  zones: z.array(id).optional(),
  /** Domain this site belongs to: the `domain` attribute of the policy resource (docs/policy.md). */
  domain: z.string().min(1).max(256).optional(),
  /** Cedar authorization policy for this site (docs/policy.md). */
  policy: sitePolicy.optional(),
  /** How this site reads ambiguous requests; overrides `http.request` key by key (docs/lifecycle.md#one-reading). */
  request: requestReadingOverrides.optional(),
  /** The agent → LLM route: per-identity credentials, models, token budgets, usage (docs/llm.md). */
  llm: siteLlm.optional(),
});

/** Serve HTTPS: certificate files (reloaded when they change) or certificates from the internal CA. */
const serverTls = z.strictObject({
  cert_file: z.string().optional(),
  key_file: z.string().optional(),
  internal_ca: z.boolean().default(false),
});

/** Certificates for the listener's site host names from an ACME CA (docs/acme-client.md). */
const acmeClient = z.strictObject({
  /** The CA's ACME directory URL (https://). */
  directory: z.string().url(),
  /** Contact address registered with the account (mailto:). */
  email: z.string().email().optional(),
  /** External Account Binding (RFC 8555 §7.3.4), when the CA requires it: key id and a secret file with the base64url HMAC key. */
  eab: z.strictObject({ kid: z.string().min(1).max(1024), hmac_key_file: z.string() }).optional(),
  /** PEM bundle trusted for the directory's HTTPS connection (a private CA); default: the system roots. */
  ca_root: z.string().optional(),
  /** How the CA checks control of a name: a file on a plain-HTTP listener (port 80), or a TLS handshake on this listener (port 443). */
  challenge: z.enum(['http-01', 'tls-alpn-01']).default('http-01'),
  /** Key type of the certificates (and of the account). */
  key_type: z.enum(['ecdsa-p256', 'ecdsa-p384', 'rsa-2048']).default('ecdsa-p256'),
  /** Longest one order may take (challenges, finalize, download) before it counts as failed. */
  order_timeout: duration('2m').pipe(z.number().int().min(5000).max(3_600_000)),
  /** Ask the CA's renewalInfo (ARI, RFC 9773) when to renew, where the directory offers it; else 2/3 of the lifetime. */
  ari: z.boolean().default(true),
  /** Where accounts and certificates are kept: files under state.dir (one instance), or state.postgres with an advisory lock per order (many instances). */
  store: z.enum(['file', 'postgres']).default('file'),
});

const listenerTls = serverTls.extend({ acme: acmeClient.optional() });

const listener = z.strictObject({
  address: z.string(),
  tls: listenerTls.optional(),
  /** A plain-HTTP listener that answers every request with 308 to the HTTPS listener. */
  redirect_https: z.boolean().optional(),
  /** The server name a TLS client that sends no SNI is served as; absent: such a handshake is refused (no certificate shown). */
  default_sni: z.string().min(1).max(253).optional(),
  /** Offer HTTP/2 (ALPN `h2`) besides HTTP/1.1; TLS listeners only, default true there (docs/configuration.md#http2). */
  http2: z.boolean().optional(),
});

/** Bounds of every HTTP/2 connection (docs/configuration.md#http2); header limits are `http.max_header_bytes` / `max_headers`. */
const http2Limits = z.strictObject({
  /** Streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  max_concurrent_streams: z.number().int().min(1).max(1000).default(100),
  /** Flow-control window of each stream and of the connection: what a client can make the gateway buffer. */
  initial_window_size: size('64KiB').pipe(z.number().int().min(16_384).max(16_777_216)),
  /** Streams a client may reset within `reset_interval` before the connection is closed (GOAWAY ENHANCE_YOUR_CALM; Rapid Reset). */
  max_resets: z.number().int().min(1).max(100_000).default(100),
  reset_interval: duration('10s').pipe(z.number().int().min(100).max(3_600_000)),
});

/**
 * TLS to a store (PostgreSQL, Redis), verified like `verify-full`: the chain must reach a
 * trusted root and the certificate must name the server. Never "encrypt without verifying".
 */
const storeTls = z.strictObject({
  /** PEM bundle of trusted roots; replaces the default trust pool. */
  ca_file: z.string().optional(),
  /** Trust the internal CA's root (default: true when a `ca` block exists and no ca_file is given). */
  internal_ca: z.boolean().optional(),
  /** Name the server certificate must carry (SAN), also sent as SNI (default: the URL's host). */
  server_name: z.string().optional(),
  /** Present a client certificate (optional): PEM certificate chain and its key (a secret file). */
  client_cert: z.strictObject({ cert_file: z.string(), key_file: z.string() }).optional(),
});

const postgres = z.strictObject({
  /** postgres://user@host:port/database — no password here: use password_file. */
  url: z.string().default('postgres://postgres@127.0.0.1:5432/postgres'),
  password_file: z.string().optional(),
  max_connections: z.number().int().min(1).max(200).default(10),
  connect_timeout: duration('5s'),
  /** Schema that holds gatehouse's tables (created if missing). */
  schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lowercase SQL identifier').default('gatehouse'),
  /** Connect over TLS with verify-full semantics (docs/deploy.md#tls-to-the-stores). */
  tls: storeTls.optional(),
});

const redis = z.strictObject({
  url: z.string().default('redis://127.0.0.1:6379/0'),
  password_file: z.string().optional(),
  command_timeout: duration('250ms'),
  connect_timeout: duration('2s'),
  key_prefix: z.string().default('gatehouse:'),
  /** Verification for a rediss:// URL (docs/deploy.md#tls-to-the-stores). */
  tls: storeTls.optional(),
});


const auditKey = z.strictObject({
  /** Key id written into every record (`kid`); never reuse an id for another key. */
  id,
  /** File holding the HMAC key (mode 0600): 64+ hex digits, or at least 32 bytes of text. */
  file: z.string(),
  /** This key signs new records (default: the last listed); the others only verify. */
  active: z.boolean().optional(),
});

/** Like `duration` but without a default: absent stays undefined. */
const optionalDuration = () =>
  z
    .union([z.string(), z.number()])
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      const ms = parseDuration(v);
      if (ms === null) {
        ctx.addIssue({ code: 'custom', message: `invalid duration ${JSON.stringify(v)} (use e.g. 12h, 7d)` });
        return z.NEVER;
      }
      return ms;
    });

/** An S3-compatible bucket for the audit archive (AWS S3, MinIO, Ceph RGW). */
const auditArchiveS3 = z.strictObject({
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)'),
  /** Key prefix inside the bucket: '' or path segments each ending in '/', e.g. `gatehouse/audit/`. */
  prefix: z
    .string()
    .regex(/^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*\/)*$/, "must be '' or segments of letters, digits, '.', '_' and '-', each ending in '/' (e.g. gatehouse/audit/)")
    .default(''),
  region: z.string().min(1).default('us-east-1'),
  /** The S3 endpoint (MinIO, Ceph: https://host:port); absent: AWS for `region`. */
  endpoint: z.string().optional(),
  /** Path-style URLs (bucket in the path); default: true with an endpoint, false for AWS. */
  force_path_style: z.boolean().optional(),
  /** Files (mode 0600) holding the access key id and the secret access key; never inline. */
  access_key_id_file: z.string(),
  secret_access_key_file: z.string(),
  /** PEM bundle trusted for an https endpoint (e.g. the internal CA's root). */
  ca_file: z.string().optional(),
  request_timeout: duration('30s').pipe(z.number().int().min(1000).max(600_000)),
});

/** Closed audit segments archived to object storage or a directory (docs/audit.md, "Archive"). */
const auditArchive = z.strictObject({
  /** A directory (e.g. a mounted backup volume); exactly one of directory and s3. */
  directory: z.string().optional(),
  s3: auditArchiveS3.optional(),
  /** A segment ends at a signed checkpoint at most this many records after the previous one (when a checkpoint allows). */
  segment_records: z.number().int().min(1).max(1_000_000).default(10_000),
  /** How often closed segments are archived. */
  interval: duration('5m').pipe(z.number().int().min(1000).max(86_400_000)),
  /** Archived records older than this are pruned from the local store; absent: never pruned. */
  keep_local: optionalDuration(),
  /** Object Lock retention of each object (when the bucket has Object Lock). */
  retention: duration('365d').pipe(z.number().int().min(0).max(100 * 365 * 86_400_000)),
  /** if_supported: retention when the bucket has Object Lock, a warning when not; required: refuse a bucket without it. */
  object_lock: z.enum(['if_supported', 'required']).default('if_supported'),
  /** Object Lock mode of each object; default: the bucket's default retention mode, else governance. */
  object_lock_mode: z.enum(['governance', 'compliance']).optional(),
  /** Longest wait between two attempts while the target fails (the backoff doubles from 1s up to this). */
  retry_max: duration('5m').pipe(z.number().int().min(1000).max(86_400_000)),
});

/** The tamper-evident audit trail (docs/audit.md). */
const audit = z.strictObject({
  enabled: z.boolean().default(false),
  /** sqlite: `<state.dir>/audit.sqlite`; postgres: the `state.postgres` connection (many instances). */
  store: z.enum(['sqlite', 'postgres']).default('sqlite'),
  /** async: durable within flush_interval; sync: a response is sent only after its record is durable. */
  mode: z.enum(['sync', 'async']).default('async'),
  /** This instance's stream id; default: generated once and kept in state.dir. Never share one between instances. */
  stream: id.optional(),
  /** Longest time a record waits in memory before its batch is written (async mode). */
  flush_interval: duration('100ms').pipe(z.number().int().min(1).max(10_000)),
  /** A batch is written early once it holds this many records. */
  batch_max: z.number().int().min(1).max(100_000).default(2000),
  /** HMAC keys; the active one signs, all verify (rotation: add a key, mark it active). */
  keys: z.array(auditKey).default([]),
  /** Ed25519 private key (PKCS#8 PEM, mode 0600) that signs checkpoints; `gatehouse audit keys generate` writes one. */
  checkpoint_key_file: z.string().optional(),
  /** Sign a checkpoint after this many records (0: only by time). */
  checkpoint_records: z.number().int().min(0).max(100_000_000).default(10_000),
  /** Sign a checkpoint when this much time passed since the last and records were added (0: only by count). */
  checkpoint_interval: duration('1m'),
  /**
   * Most records waiting in memory to be sealed and written (the store slower than the
   * traffic); beyond it traffic is refused like with a full spool (503 audit_unavailable).
   */
  queue_limit: z.number().int().min(1).max(10_000_000).default(50_000),
  /** Largest local spool while the store is down; beyond it traffic is refused (503 audit_unavailable). */
  spool_limit: size('256MiB'),
  /** refuse: fail closed when records cannot be kept; allow: serve and count the loss. */
  on_failure: z.enum(['refuse', 'allow']).default('refuse'),
  /** IP-filter drops are recorded as one record per client IP, site and rule per interval. */
  drop_interval: duration('10s').pipe(z.number().int().min(100).max(3_600_000)),
  /** Archive closed segments to object storage or a directory (docs/audit.md, "Archive"). */
  archive: auditArchive.optional(),
});


/** One External Account Binding key (RFC 8555 §7.3.4): its key id and the file holding the base64url HMAC key. */
const acmeEabKey = z.strictObject({
  kid: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'an EAB key id is 1-128 base64url characters'),
  /** File (mode 0600) holding the HMAC key, base64url as CAs hand it out; at least 32 bytes decoded. */
  file: z.string(),
});

/** The ACME server (RFC 8555) on the internal CA (docs/acme.md). */
const acmeServer = z.strictObject({
  /** HTTPS listen address of the ACME listener (its certificate comes from the internal CA). */
  listen: z.string(),
  /** DNS names / IPs the listener's certificate covers and clients use; default: the listen host. */
  names: z.array(z.string().min(1)).min(1).optional(),
  /** The base URL in the directory and every object URL (https://name:port); default: https://<first name>:<listen port>. */
  external_url: z.string().optional(),
  /** Accounts, orders, authorizations, certificates: sqlite (state.dir/acme.db) or postgres (state.postgres; nonces in state.redis). */
  store: z.enum(['sqlite', 'postgres']).default('sqlite'),
  /** Lifetime of an issued certificate unless the order asks for less (notAfter). */
  lifetime: duration('24h').pipe(z.number().int().min(60_000, 'lifetime must be at least 1m')),
  /** Longest lifetime an order may ask for with notAfter. */
  max_lifetime: duration('7d').pipe(z.number().int().min(60_000).max(397 * 86_400_000, 'max_lifetime must be at most 397d')),
  /** Largest JWS request body accepted (before any parsing). */
  max_request_bytes: size('64KiB').pipe(z.number().int().min(1024).max(1_048_576)),
  /** A nonce is accepted once, within this long of being issued. */
  nonce_lifetime: duration('10m').pipe(z.number().int().min(10_000).max(86_400_000)),
  /** A pending order or authorization expires after this long. */
  order_lifetime: duration('1h').pipe(z.number().int().min(60_000).max(7 * 86_400_000)),
  /** A valid authorization is reused for new orders of the same account for this long. */
  authorization_reuse: duration('1h').pipe(z.number().int().min(0).max(30 * 86_400_000)),
  /** Retry-After (whole seconds) on pending orders, authorizations and processing challenges. */
  retry_after: duration('1s').pipe(z.number().int().min(1000).max(3_600_000)),
  /** Who may create an account: client IP ranges (the socket peer) and/or External Account Binding. */
  accounts: z
    .strictObject({
      /** CIDRs allowed to create accounts; absent: any address. */
      allow_ips: z.array(z.string()).optional(),
      /** Require a valid External Account Binding with one of these keys. */
      eab_keys: z.array(acmeEabKey).default([]),
    })
    .prefault({}),
  /** Identifiers certificates may be issued for; anything else is refused (rejectedIdentifier). */
  identifiers: z
    .strictObject({
      /** DNS suffixes (a leading dot: `.svc.internal` allows `a.svc.internal`, not `svc.internal`). */
      dns_suffixes: z.array(z.string().min(2)).default([]),
      /** Exact DNS names. */
      dns_names: z.array(z.string().min(1)).default([]),
      /** IP identifiers (RFC 8738) inside these CIDRs. */
      ip_ranges: z.array(z.string()).default([]),
    })
    .prefault({}),
  /** Per-account limits (rateLimited beyond them). */
  limits: z
    .strictObject({
      /** Orders not yet valid or invalid (pending, ready, processing) at once. */
      pending_orders: z.number().int().min(1).max(100_000).default(100),
      /** Pending authorizations at once. */
      pending_authorizations: z.number().int().min(1).max(100_000).default(300),
    })
    .prefault({}),
  /** How challenges are validated. Production: http-01 on port 80, tls-alpn-01 on 443 (RFC 8555, RFC 8737). */
  challenges: z
    .strictObject({
      types: z.array(z.enum(['http-01', 'tls-alpn-01'])).min(1).default(['http-01', 'tls-alpn-01']),
      /** Port http-01 fetches from (80 in production; other values only for tests and labs). */
      http_port: z.number().int().min(1).max(65535).default(80),
      /** Port tls-alpn-01 connects to (443 in production). */
      tls_alpn_port: z.number().int().min(1).max(65535).default(443),
      /** Whole validation (resolve, connect, answer) time bound. */
      timeout: duration('10s').pipe(z.number().int().min(100).max(60_000)),
      /** Largest http-01 response body read. */
      max_response_bytes: size('8KiB').pipe(z.number().int().min(128).max(65_536)),
      /** Static name → address map (air-gapped networks, tests); names not listed use the system resolver. */
      resolve: z.record(z.string().min(1), z.string().min(1)).default({}),
      /** Resolve only through `resolve` (a name not listed fails validation). */
      static_only: z.boolean().default(false),
    })
    .prefault({}),
  /** CRL Distribution Point URL written into issued certificates; default: <external_url>/acme/crl. */
  crl_url: z.string().optional(),
  /** nextUpdate of the CRL, and how long a served CRL may be cached. */
  crl_lifetime: duration('1h').pipe(z.number().int().min(60_000).max(7 * 86_400_000)),
});

export const configSchema = z.strictObject({
  listen: z.array(listener).min(1, 'at least one listener is required').default([{ address: '127.0.0.1:8080' }]),
  admin: z
    .strictObject({
      listen: z.string().default('127.0.0.1:9090'),
      enabled: z.boolean().default(true),
      /** Bearer token for the admin API, read from a file (mode 0600). Without it (and without client_certificates) the API is refused. */
      token_file: z.string().optional(),
      /** Serve the admin listener over HTTPS, like a public listener's `tls` (docs/tls.md#the-admin-listener). */
      tls: serverTls
        .extend({
          /** DNS names and IPs an internal_ca certificate covers besides the listen host (required when it listens on every interface). */
          names: z.array(z.string().min(1)).optional(),
        })
        .optional(),
      /** Admin API authentication by client certificate (needs `tls`): a trust pool and the identities allowed. */
      client_certificates: z
        .strictObject({
          /** PEM bundle of the CAs client certificates must chain to; default: the internal CA's root (needs a `ca` block). */
          ca_file: z.string().optional(),
          /** Allowed identities, exact match: `cn:NAME`, `dns:NAME` or `uri:URI`. Empty is an error (no "any certificate"). */
          allow: z.array(z.string()).default([]),
        })
        .optional(),
      /** Lets POST /v1/tokens sign tokens (only when set): private key file (mode 0600), kid and iss. */
      issuer: z
        .strictObject({
          key_file: z.string(),
          kid: z.string().min(1).max(256),
          iss: z.string().min(1),
          alg: z.enum(JWS_ALGS).optional(),
        })
        .optional(),
    })
    .prefault({}),
  /** Peers whose X-Forwarded-For is believed (right-to-left walk). Empty: trust nobody. */
  trusted_proxies: z.array(z.string()).default([]),
  /** Applied to every request before routing, with the same semantics as a site's. */
  ip_filter: ipFilter.optional(),
  http: z
    .strictObject({
      max_header_bytes: size('16KiB'),
      max_headers: z.number().int().min(1).max(10_000).default(100),
      header_timeout: duration('10s'),
      body_idle_timeout: duration('30s'),
      request_timeout: duration('5m'),
      keep_alive_timeout: duration('5s'),
      shutdown_grace: duration('10s'),
      request_id_header: headerName.default('X-Request-Id'),
      /** Defaults for how sites read ambiguous requests (docs/lifecycle.md#one-reading). */
      request: requestReadingDefaults,
      /** A host no site serves: close with zero bytes like an IP-filter drop (private), or answer 421. */
      unknown_host: z.enum(['close', 'misdirected']).default('close'),
      /** HTTP/2 connection bounds (listeners with `http2`). */
      http2: http2Limits.prefault({}),
    })
    .prefault({}),
  state: z
    .strictObject({
      /** Rate-limit counters and revocations: in-process (revocations in SQLite under dir), or Redis for many instances. */
      store: z.enum(['memory', 'redis']).default('memory'),
      /** Directory for embedded state files (SQLite databases, spools); relative to the config file. */
      dir: z.string().default('.gatehouse'),
      redis: redis.optional(),
      /** Shared PostgreSQL connection for the distributed identity and audit stores. */
      postgres: postgres.optional(),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      /** At most this many IP-filter denial lines per interval (the rest are summarised). */
      denial_lines_per_minute: z.number().int().min(0).max(100_000).default(60),
    })
    .prefault({}),
  headers: headersBlock.optional(),
  /** The internal CA (created with `gatehouse ca init`) the gateway issues its certificates from. */
  ca: z
    .strictObject({
      dir: z.string(),
      password_file: z.string(),
      lifetime: duration('24h').pipe(z.number().int().min(3000, 'lifetime must be at least 3s').max(397 * 86_400_000, 'lifetime must be at most 397d')),
    })
    .optional(),
  tls: z
    .strictObject({
      /** How often certificate files are checked for changes (and the expiry gauges refreshed). */
      check_interval: duration('10s').pipe(z.number().int().min(100, 'check_interval must be at least 100ms')),
      /** A certificate with less than this left is flagged by gatehouse_tls_certificate_expiring. */
      expiry_warning: duration('6h'),
      /** Longest wait between two attempts of a failing renewal (the backoff doubles from 1s up to this). */
      retry_max: duration('5m').pipe(z.number().int().min(1000, 'retry_max must be at least 1s')),
    })
    .prefault({}),
  audit: audit.prefault({}),
  /** Token verification shared by the sites that have an `auth` block (docs/identity.md). */
  auth: z
    .strictObject({
      issuers: z.array(issuer).default([]),
      claims: claimMap.prefault({}),
      /** Headers that carry the verified identity upstream; client copies are removed. */
      identity_headers: identityHeaders.prefault({}),
      /** Larger Authorization headers are refused before any parsing or crypto. */
      max_token_bytes: size('8KiB').pipe(z.number().int().min(256).max(65_536)),
      /** Verified tokens remembered (by SHA-256) until their `exp`, so steady state skips the signature check. */
      cache_entries: z.number().int().min(0).max(10_000_000).default(100_000),
    })
    .prefault({}),
  revocation: z
    .strictObject({
      /** Longest an instance may go without confirming its revocation set is current. */
      max_staleness: duration('5s').pipe(z.number().int().min(500).max(3_600_000)),
      /** What to do when the set is not known to be current: refuse (503) or allow. */
      on_unavailable: z.enum(['refuse', 'allow']).default('refuse'),
      /** Upper bound on any accepted token's lifetime (exp - iat); longer tokens are refused. */
      max_token_lifetime: duration('24h').pipe(z.number().int().min(60_000).max(31 * 86_400_000)),
      /** How often the embedded (SQLite) store looks for revocations written by other processes (the CLI). */
      poll_interval: duration('500ms').pipe(z.number().int().min(50).max(60_000)),
    })
    .prefault({}),
  identities: z
    .strictObject({
      /** sqlite (in state.dir) or postgres (state.postgres). */
      store: z.enum(['sqlite', 'postgres']).default('sqlite'),
      /** A valid token whose subject is not registered: refuse (403 unknown_identity) or allow with default limits. */
      unknown_identity: z.enum(['refuse', 'allow']).default('refuse'),
      /** How often the in-memory registry view re-reads the store (bound on suspension delay without push). */
      refresh_interval: duration('1s').pipe(z.number().int().min(50).max(300_000)),
      /** Refuse authenticated requests (503) when the view could not be refreshed for this long. */
      max_staleness: duration('30s').pipe(z.number().int().min(1000).max(3_600_000)),
      /** Requests per minute for an agent without its own rpm_limit. */
      default_agent_rpm: z.number().int().min(1).max(1_000_000_000).default(60),
      /** Requests per minute for humans without their own rpm_limit, by role (`default` for any other role). */
      human_rpm_by_role: z.record(z.string(), z.number().int().min(1).max(1_000_000_000)).default({ default: 120 }),
      /** AES-256-GCM keys (files of 64 hex digits, mode 0600) that encrypt credentials stored in the registry (docs/llm.md#credentials). */
      credential_keys: z
        .array(
          z.strictObject({
            id,
            file: z.string(),
            /** This key encrypts new credentials (default: the last listed); the others only decrypt. */
            active: z.boolean().optional(),
          }),
        )
        .default([]),
    })
    .prefault({}),
  /** The ACME server on the internal CA (docs/acme.md); needs a `ca` block. */
  acme_server: acmeServer.optional(),
  sites: z.array(siteSchema).min(1, 'at least one site is required'),
  /** The process's identity: the user it drops to after binding the listeners as root (docs/deploy.md). */
  process: z
    .strictObject({
      /** User name (from /etc/passwd) or numeric uid to run as once the listeners are bound. */
      user: z.union([z.string().regex(/^(\d+|[a-z_][a-z0-9_.-]{0,31}\$?)$/i, 'a user name or a numeric uid'), z.number().int().min(0).max(4_294_967_294)]).optional(),
      /** Group name (from /etc/group) or numeric gid; default: the user's primary group. */
      group: z.union([z.string().regex(/^(\d+|[a-z_][a-z0-9_.-]{0,31})$/i, 'a group name or a numeric gid'), z.number().int().min(0).max(4_294_967_294)]).optional(),
      /** Keep serving as root when started as root without `user` (refused by default). */
      serve_as_root: z.boolean().default(false),
      /** V8's old-generation growth past the live size before a full GC, in percent; 0: V8 decides (src/server/heap.ts). */
      heap_growing_percent: z.number().int().min(0).max(400).default(50),
    })
    .prefault({}),
});

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type SiteConfig = z.output<typeof siteSchema>;
export type RateRuleConfig = SiteConfig['rate_limits'][number];
export type IpFilterConfig = z.output<typeof ipFilter>;
export type HeadersConfig = z.output<typeof headersBlock>;
export type PostgresConfig = z.output<typeof postgres>;
export type RedisConfig = z.output<typeof redis>;
export type StoreTlsConfig = z.output<typeof storeTls>;
export type ProcessConfig = Config['process'];
export type ListenerConfig = Config['listen'][number];
export type ServerTlsConfig = z.output<typeof serverTls>;
export type AcmeClientConfig = z.output<typeof acmeClient>;
export type AdminConfig = Config['admin'];
export type UpstreamConfig = NonNullable<SiteConfig['upstream']>;
export type UpstreamMemberConfig = z.output<typeof upstreamMember>;
export type AuditConfig = z.output<typeof audit>;
export type AuditArchiveConfig = z.output<typeof auditArchive>;
export type AuthConfig = Config['auth'];
export type IssuerConfig = z.output<typeof issuer>;
export type SiteAuthConfig = z.output<typeof siteAuth>;
export type SitePolicyConfig = z.output<typeof sitePolicy>;
export type RequestReadingConfig = z.output<typeof requestReadingDefaults>;
export type RevocationConfig = Config['revocation'];
export type IdentitiesConfig = Config['identities'];
export type SiteLlmConfig = z.output<typeof siteLlm>;
export type LlmGrantConfig = z.output<typeof llmGrant>;
export type AcmeServerConfig = z.output<typeof acmeServer>;
export { JWS_ALGS };
