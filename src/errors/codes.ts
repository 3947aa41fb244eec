/**
 * The error-code registry: every answer gatehouse makes itself has one of these stable
 * snake_case codes. Clients see status, code, the generic message and the request id;
 * logs carry the full cause. `docs/errors.md` lists the same table and a test keeps the
 * two in step, so adding a code here without documenting it fails `npm test`.
 */
export const ERROR_CODES = {
  bad_request: { status: 400, message: 'The request is malformed.' },
  missing_host: { status: 400, message: 'The request has no Host header.' },
  ambiguous_path: { status: 400, message: 'The request path can be read in more than one way.' },
  bad_header: { status: 400, message: 'A request header is not accepted.' },
  invalid_body: { status: 400, message: 'The request body cannot be read in exactly one way.' },
  unsupported_media_type: { status: 415, message: 'The request body has a media type or content coding that is not accepted.' },
  unsupported_transfer_encoding: { status: 501, message: 'The request uses a transfer coding that is not supported.' },
  request_timeout: { status: 408, message: 'The request was not received in time.' },
  body_too_large: { status: 413, message: 'The request body is too large.' },
  admin_unauthorized: { status: 401, message: 'Admin API authentication failed.' },
  admin_auth_not_configured: { status: 403, message: 'The admin API is disabled: no admin authentication is configured.' },
  admin_forbidden: { status: 403, message: 'This client is not allowed to use the admin API.' },
  missing_token: { status: 401, message: 'A bearer token is required.' },
  malformed_authorization: { status: 400, message: 'The Authorization header cannot be read as one bearer token.' },
  invalid_token: { status: 401, message: 'The bearer token is not valid.' },
  token_expired: { status: 401, message: 'The bearer token has expired.' },
  token_revoked: { status: 401, message: 'The bearer token has been revoked.' },
  identity_suspended: { status: 403, message: 'This identity is suspended.' },
  unknown_identity: { status: 403, message: 'This identity is not registered.' },
  identity_mismatch: { status: 403, message: 'The token does not match the registered identity.' },
  policy_denied: { status: 403, message: 'Access to this resource is not permitted.' },
  zone_violation: { status: 403, message: 'This site may not reach the requested service.' },
  not_found: { status: 404, message: 'No such endpoint.' },
  method_not_allowed: { status: 405, message: 'Method not allowed.' },
  expectation_failed: { status: 417, message: 'The request states an expectation the gateway cannot meet.' },
  identity_exists: { status: 409, message: 'An identity with this subject already exists.' },
  misdirected_request: { status: 421, message: 'No site is served for this host.' },
  headers_too_large: { status: 431, message: 'The request headers are too large.' },
  rate_limited: { status: 429, message: 'Too many requests; retry later.' },
  internal_error: { status: 500, message: 'The gateway failed to handle the request.' },
  upstream_unavailable: { status: 502, message: 'The upstream service is unavailable.' },
  upstream_error: { status: 502, message: 'The upstream service failed to answer.' },
  upstream_tls_error: { status: 502, message: 'The upstream service could not be verified.' },
  rate_limit_unavailable: { status: 503, message: 'The rate limiter cannot decide right now.' },
  audit_unavailable: { status: 503, message: 'The request cannot be audited right now.' },
  token_keys_unavailable: { status: 503, message: 'Token verification keys are unavailable right now.' },
  revocation_unavailable: { status: 503, message: 'The revocation list cannot be confirmed current right now.' },
  identity_registry_unavailable: { status: 503, message: 'The identity registry cannot be confirmed current right now.' },
  no_healthy_upstream: { status: 503, message: 'No upstream server is available right now.' },
  shutting_down: { status: 503, message: 'The gateway is shutting down.' },
  upstream_timeout: { status: 504, message: 'The upstream service did not answer in time.' },
  // The LLM route (docs/llm.md); it answers invalid_body and unsupported_media_type too.
  model_not_allowed: { status: 403, message: 'This model is not available to this identity.' },
  llm_parameter_not_allowed: { status: 403, message: 'A request parameter is not allowed for this identity.' },
  no_upstream_credential: { status: 403, message: 'No upstream credential is configured for this identity.' },
  // Never sent to a client: the connection is closed with zero bytes written. Listed so
  // logs, metrics and audit records use the same id for the decision.
  ip_denied: { status: 0, message: 'Connection closed: client address not allowed.' },
  // Never sent either: a request parsed behind an answer that closed its connection (or
  // behind a request that asked for the close) is not processed; it is logged and audited.
  connection_closed: { status: 0, message: 'Not processed: the connection was closed before this request.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}
