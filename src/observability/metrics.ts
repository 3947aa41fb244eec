/**
 * Every metric gatehouse exports, defined in one place. Names follow
 * `gatehouse_<area>_<name>_{total,seconds,bytes}`; labels are bounded (site and rule ids
 * come from config, status codes are a small set). Each gateway owns its own registry, so
 * several gateways can live in one process (tests) without sharing counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<'site' | 'status'>;
  readonly duration: Histogram<'site'>;
  readonly upstreamErrors: Counter<'site' | 'code'>;
  readonly ipDenials: Counter<'site' | 'list'>;
  readonly rateLimitRefusals: Counter<'site' | 'rule' | 'mode'>;
  readonly rateLimitStoreErrors: Counter<'site' | 'action'>;
  readonly clientErrors: Counter<'code'>;
  readonly configReloads: Counter<'result'>;
  readonly configLastReload: Gauge<'result'>;
  readonly inflight: Gauge;
  readonly info: Gauge<'version'>;
  readonly tlsCertExpiry: Gauge<'name'>;
  readonly tlsCertExpiring: Gauge<'name'>;
  readonly tlsRenewals: Counter<'name'>;
  readonly tlsRenewalFailures: Counter<'name'>;
  readonly tlsHandshakeFailures: Counter<'reason'>;
  /** ACME client (docs/acme-client.md): orders by certificate name (`acme/<site id>`) and result; when each is due for renewal. */
  readonly acmeOrders: Counter<'name' | 'result'>;
  readonly acmeRenewAt: Gauge<'name'>;
  readonly auditRecords: Counter;
  readonly auditWriteSeconds: Histogram;
  readonly auditSpoolBytes: Gauge;
  readonly auditStoreErrors: Counter;
  readonly auditVerifyFailures: Counter<'kind'>;
  readonly auditLastCheckpoint: Gauge;
  readonly auditRefusals: Counter;
  /** Audit archive (docs/audit.md, "Archive"): segments written and read back, bytes, failures by reason. */
  readonly auditArchiveSegments: Counter;
  readonly auditArchiveBytes: Counter;
  readonly auditArchiveFailures: Counter<'reason'>;
  /**
   * 1 while the last archive run succeeded, else 0. The archive gauges are labelled with
   * the target (one per gateway) so that a gateway without an archive exports none of them
   * (an unlabelled gauge would read 0 and fire the archive alerts).
   */
  readonly auditArchiveUp: Gauge<'target'>;
  readonly auditArchiveLastSuccess: Gauge<'target'>;
  readonly auditArchiveLag: Gauge<'target'>;
  readonly auditArchivePruned: Counter;
  readonly auditArchiveObjectLock: Gauge<'target'>;
  /** Token stage outcomes: cached, verified, or the refusal code (bounded set). */
  readonly tokenVerifications: Counter<'site' | 'result'>;
  readonly revocationEntries: Gauge;
  /** 1 while the instance can vouch for its revocation set, else 0. */
  readonly revocationCurrent: Gauge;
  /** 1 while the identity registry view is current, else 0. */
  readonly identityRegistryCurrent: Gauge;
  /** Policy decisions by site, mode (enforce/shadow) and decision (allow/deny/error). */
  readonly policyDecisions: Counter<'site' | 'mode' | 'decision'>;
  /** Policy decision cache lookups by site and result (hit/miss). */
  readonly policyCache: Counter<'site' | 'result'>;
  /** Policy file reloads by site and result (success/failure). */
  readonly policyReloads: Counter<'site' | 'result'>;
  /** LLM calls that reached the upstream, by site, model (public name) and usage source (reported, estimated, none). */
  readonly llmCalls: Counter<'site' | 'model' | 'usage'>;
  /** LLM tokens charged, by site, model and kind (prompt, completion). */
  readonly llmTokens: Counter<'site' | 'model' | 'kind'>;
  /** LLM answers charged by estimate, by site, model and reason (unexpected_shape, interrupted). */
  readonly llmUsageUnknown: Counter<'site' | 'model' | 'reason'>;
  /** Request arrival to the first answer byte sent, for LLM calls, by site and model. */
  readonly llmTimeToFirstByte: Histogram<'site' | 'model'>;
  /** LLM requests the llm stage refused, by site and code. */
  readonly llmRefusals: Counter<'site' | 'code'>;
  /** Usage that could not be charged to the token budgets after retries, by site. */
  readonly llmSettleFailures: Counter<'site'>;
  /** 1 while a dependency works, 0 while it is down (src/observability/dependency-state.ts). */
  readonly dependencyUp: Gauge<'dependency'>;
  /** Dependency state changes, by dependency and the state entered (down, up). */
  readonly dependencyTransitions: Counter<'dependency' | 'state'>;
  /** Upstream pools (docs/operations.md#upstream-pools): attempts, failures, ejections and health per member (`upstream` = the member id). */
  readonly upstreamRequests: Counter<'site' | 'upstream'>;
  readonly upstreamFailures: Counter<'site' | 'upstream' | 'reason'>;
  readonly upstreamEjections: Counter<'site' | 'upstream'>;
  readonly upstreamHealthy: Gauge<'site' | 'upstream'>;
  /** Retries on another member by site and result (retried, budget_exhausted). */
  readonly upstreamRetries: Counter<'site' | 'result'>;
  /** HTTP/2 connections accepted on public listeners (ALPN h2). */
  readonly http2Sessions: Counter;
  /** HTTP/2 connections open now. */
  readonly http2SessionsActive: Gauge;
  /** HTTP/2 streams that became exchanges (each is also in gatehouse_http_requests_total). */
  readonly http2Streams: Counter;
  /** HTTP/2 streams the client reset before their answer was complete. */
  readonly http2StreamResets: Counter;
  /** GOAWAY frames the gateway sent, by reason (shutdown, idle, rapid_reset). */
  readonly http2Goaways: Counter<'reason'>;
  /** HTTP/2 connections that ended on a protocol or flow-control error, by Node's error code (bounded set). */
  readonly http2SessionErrors: Counter<'code'>;
  /** Exchanges finished, by protocol (http/1.1, h2); the per-site counter stays protocol-free. */
  readonly requestsByProtocol: Counter<'protocol'>;
  /** ACME server (docs/acme.md): accounts created, orders created. */
  readonly acmeAccounts: Counter;
  readonly acmeServerOrders: Counter;
  /** Certificates issued by the ACME server, by CSR key type (p256, p384, ed25519, rsa). */
  readonly acmeCertificatesIssued: Counter<'key_type'>;
  /** Certificates revoked through the ACME server, by who asked (account, certificate_key). */
  readonly acmeCertificatesRevoked: Counter<'by'>;
  /** Challenge validations by type (http-01, tls-alpn-01) and result (valid, invalid). */
  readonly acmeValidations: Counter<'type' | 'result'>;
  /** ACME problem documents sent, by RFC 8555 error type (the name after urn:ietf:params:acme:error:). */
  readonly acmeErrors: Counter<'type'>;
  /** Fast path: cached label children for the per-request counters. */
  countRequest(site: string, status: number, seconds: number): void;
}

export function createMetrics(opts: { version: string; defaultMetrics?: boolean }): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'gatehouse_' });
  const requests = new Counter({
    name: 'gatehouse_http_requests_total',
    help: 'Requests answered, by site and status (0 = connection closed without a response).',
    labelNames: ['site', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'Time from request received to response finished, by site.',
    labelNames: ['site'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const upstreamErrors = new Counter({
    name: 'gatehouse_upstream_errors_total',
    help: 'Upstream failures by site and error code (upstream_unavailable, upstream_timeout, upstream_error).',
    labelNames: ['site', 'code'] as const,
    registers: [registry],
  });
  const upstreamRequests = new Counter({
    name: 'gatehouse_upstream_requests_total',
    help: 'Attempts sent to an upstream pool member (retries included), by site and upstream (the member id).',
    labelNames: ['site', 'upstream'] as const,
    registers: [registry],
  });
  const upstreamFailures = new Counter({
    name: 'gatehouse_upstream_failures_total',
    help: 'Failed attempts to an upstream pool member, by site, upstream and reason (connect_failure, reset_before_response, timeout, tls, status_502, status_503, status_504, error).',
    labelNames: ['site', 'upstream', 'reason'] as const,
    registers: [registry],
  });
  const upstreamEjections = new Counter({
    name: 'gatehouse_upstream_ejections_total',
    help: 'Times an upstream pool member was taken out after consecutive failures (passive health), by site and upstream.',
    labelNames: ['site', 'upstream'] as const,
    registers: [registry],
  });
  const upstreamHealthy = new Gauge({
    name: 'gatehouse_upstream_healthy',
    help: '1 while an upstream pool member takes traffic, 0 while it is ejected or fails its active health check, by site and upstream.',
    labelNames: ['site', 'upstream'] as const,
    registers: [registry],
  });
  const upstreamRetries = new Counter({
    name: 'gatehouse_upstream_retries_total',
    help: 'Requests sent again to another upstream pool member (retried), or not because the retry budget was spent (budget_exhausted), by site.',
    labelNames: ['site', 'result'] as const,
    registers: [registry],
  });
  const ipDenials = new Counter({
    name: 'gatehouse_ip_filter_denials_total',
    help: 'Connections closed by the IP filter, by site (or "-" for the global filter) and the list that decided (allow = not in the allow list, deny = in the deny list).',
    labelNames: ['site', 'list'] as const,
    registers: [registry],
  });
  const rateLimitRefusals = new Counter({
    name: 'gatehouse_rate_limit_refusals_total',
    help: 'Requests refused (mode=enforce) or that would have been refused (mode=shadow) by a rate-limit rule.',
    labelNames: ['site', 'rule', 'mode'] as const,
    registers: [registry],
  });
  const rateLimitStoreErrors = new Counter({
    name: 'gatehouse_rate_limit_store_errors_total',
    help: 'Rate-limit decisions the store could not make, by site and what the failure mode did (refused or allowed).',
    labelNames: ['site', 'action'] as const,
    registers: [registry],
  });
  const clientErrors = new Counter({
    name: 'gatehouse_http_client_errors_total',
    help: 'Connections answered at the HTTP parser level (malformed request, oversize headers, timeouts), by error code.',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const configReloads = new Counter({
    name: 'gatehouse_config_reloads_total',
    help: 'Config reload attempts by result (success, failure).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const configLastReload = new Gauge({
    name: 'gatehouse_config_last_reload_timestamp_seconds',
    help: 'Unix time of the last reload attempt with the given result.',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const inflight = new Gauge({
    name: 'gatehouse_http_requests_in_flight',
    help: 'Requests currently being handled.',
    registers: [registry],
  });
  const info = new Gauge({
    name: 'gatehouse_build_info',
    help: 'Always 1; the version label says which gatehouse is running.',
    labelNames: ['version'] as const,
    registers: [registry],
  });
  info.set({ version: opts.version }, 1);
  // TLS (docs/tls.md). `name` is the certificate's id: site/<site id>, upstream-client, admin, file/<cert_file>.
  const tlsCertExpiry = new Gauge({
    name: 'gatehouse_tls_certificate_expiry_timestamp_seconds',
    help: 'Unix time at which the certificate in use expires, by certificate name.',
    labelNames: ['name'] as const,
    registers: [registry],
  });
  const tlsCertExpiring = new Gauge({
    name: 'gatehouse_tls_certificate_expiring',
    help: '1 when the certificate in use expires within tls.expiry_warning (renewal is failing or a file was not replaced), else 0.',
    labelNames: ['name'] as const,
    registers: [registry],
  });
  const tlsRenewals = new Counter({
    name: 'gatehouse_tls_certificate_renewals_total',
    help: 'Certificates renewed (internal CA) or reloaded from changed files, by certificate name.',
    labelNames: ['name'] as const,
    registers: [registry],
  });
  const tlsRenewalFailures = new Counter({
    name: 'gatehouse_tls_certificate_renewal_failures_total',
    help: 'Failed renewals or reloads of changed certificate files (the old certificate keeps serving; retried with backoff).',
    labelNames: ['name'] as const,
    registers: [registry],
  });
  const tlsHandshakeFailures = new Counter({
    name: 'gatehouse_tls_handshake_failures_total',
    help: 'TLS handshakes that failed or were refused, by reason (unknown_server_name, no_server_name, protocol, renegotiation, other).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const acmeOrders = new Counter({
    name: 'gatehouse_acme_orders_total',
    help: 'ACME orders for gatehouse\'s own certificates, by certificate name (acme/<site id>) and result (issued, failed).',
    labelNames: ['name', 'result'] as const,
    registers: [registry],
  });
  const acmeRenewAt = new Gauge({
    name: 'gatehouse_acme_renewal_timestamp_seconds',
    help: 'Unix time at which the ACME certificate in use is due for renewal (the CA\'s ARI window, or two thirds of its lifetime).',
    labelNames: ['name'] as const,
    registers: [registry],
  });
  const auditRecords = new Counter({ name: 'gatehouse_audit_records_total', help: 'Audit records written to the audit store.', registers: [registry] });
  const auditWriteSeconds = new Histogram({
    name: 'gatehouse_audit_write_duration_seconds',
    help: 'Time to write one batch of audit records to the store.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const auditSpoolBytes = new Gauge({ name: 'gatehouse_audit_spool_bytes', help: 'Size of the local audit spool (records waiting for the store).', registers: [registry] });
  const auditStoreErrors = new Counter({ name: 'gatehouse_audit_store_errors_total', help: 'Audit batches the store refused (spooled locally instead).', registers: [registry] });
  const auditVerifyFailures = new Counter({ name: 'gatehouse_audit_verify_failures_total', help: 'Problems found by audit verification runs (admin API), by kind.', labelNames: ['kind'] as const, registers: [registry] });
  const auditLastCheckpoint = new Gauge({ name: 'gatehouse_audit_last_checkpoint_timestamp_seconds', help: 'Unix time of the last signed audit checkpoint (checkpoint age = now - this).', registers: [registry] });
  const auditRefusals = new Counter({ name: 'gatehouse_audit_refusals_total', help: 'Requests refused with audit_unavailable because records could not be kept.', registers: [registry] });
  const auditArchiveSegments = new Counter({ name: 'gatehouse_audit_archive_segments_total', help: 'Audit segments archived and read back verified.', registers: [registry] });
  const auditArchiveBytes = new Counter({ name: 'gatehouse_audit_archive_uploaded_bytes_total', help: 'Bytes of audit segments (data and manifests) written to the archive.', registers: [registry] });
  const auditArchiveFailures = new Counter({
    name: 'gatehouse_audit_archive_failures_total',
    help: 'Failed audit archive runs, by reason (unreachable, denied, not_found, public, object_lock_missing, invalid_segment, conflict, readback, store, error).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const auditArchiveUp = new Gauge({ name: 'gatehouse_audit_archive_up', help: '1 while the last audit archive run succeeded, 0 while archiving fails (records stay local meanwhile).', labelNames: ['target'] as const, registers: [registry] });
  const auditArchiveLastSuccess = new Gauge({ name: 'gatehouse_audit_archive_last_success_timestamp_seconds', help: 'Unix time of the last successful audit archive run.', labelNames: ['target'] as const, registers: [registry] });
  const auditArchiveLag = new Gauge({ name: 'gatehouse_audit_archive_lag_records', help: 'Records of this stream not yet archived, at the last successful archive run.', labelNames: ['target'] as const, registers: [registry] });
  const auditArchivePruned = new Counter({ name: 'gatehouse_audit_archive_pruned_records_total', help: 'Archived audit records pruned from the local store (after keep_local).', registers: [registry] });
  const auditArchiveObjectLock = new Gauge({ name: 'gatehouse_audit_archive_object_lock', help: '1 when the archive bucket has Object Lock (objects written with retention), else 0.', labelNames: ['target'] as const, registers: [registry] });
  const tokenVerifications = new Counter({
    name: 'gatehouse_token_verifications_total',
    help: 'Bearer tokens seen by the token stage, by site and result: cached (verified earlier, signature check skipped), verified, or the refusal code.',
    labelNames: ['site', 'result'] as const,
    registers: [registry],
  });
  const revocationEntries = new Gauge({
    name: 'gatehouse_revocation_entries',
    help: 'Live revocation entries (jti and subject cut-offs) this instance holds in memory.',
    registers: [registry],
  });
  const revocationCurrent = new Gauge({
    name: 'gatehouse_revocation_current',
    help: '1 while this instance confirmed its revocation set within revocation.max_staleness, else 0 (authenticated requests get 503).',
    registers: [registry],
  });
  const policyDecisions = new Counter({
    name: 'gatehouse_policy_decisions_total',
    help: 'Policy decisions by site, mode (enforce, shadow) and decision (allow, deny, error).',
    labelNames: ['site', 'mode', 'decision'] as const,
    registers: [registry],
  });
  const policyCache = new Counter({
    name: 'gatehouse_policy_cache_total',
    help: 'Policy decision cache lookups by site and result (hit, miss).',
    labelNames: ['site', 'result'] as const,
    registers: [registry],
  });
  const policyReloads = new Counter({
    name: 'gatehouse_policy_reloads_total',
    help: 'Policy file reloads after a file change, by site and result (success, failure: the last good set stays).',
    labelNames: ['site', 'result'] as const,
    registers: [registry],
  });
  const identityRegistryCurrent = new Gauge({
    name: 'gatehouse_identity_registry_current',
    help: '1 while the in-memory identity registry view was refreshed within identities.max_staleness, else 0.',
    registers: [registry],
  });

  const llmCalls = new Counter({
    name: 'gatehouse_llm_calls_total',
    help: 'LLM calls admitted to the upstream, by site, model (the public name from llm.models) and usage (reported by the upstream, estimated, none).',
    labelNames: ['site', 'model', 'usage'] as const,
    registers: [registry],
  });
  const llmTokens = new Counter({
    name: 'gatehouse_llm_tokens_total',
    help: 'LLM tokens charged to the token budgets, by site, model and kind (prompt, completion).',
    labelNames: ['site', 'model', 'kind'] as const,
    registers: [registry],
  });
  const llmUsageUnknown = new Counter({
    name: 'gatehouse_llm_usage_unknown_total',
    help: 'LLM answers without usable usage, charged by the documented estimate, by site, model and reason (unexpected_shape, interrupted).',
    labelNames: ['site', 'model', 'reason'] as const,
    registers: [registry],
  });
  const llmTimeToFirstByte = new Histogram({
    name: 'gatehouse_llm_time_to_first_byte_seconds',
    help: 'LLM calls: time from the request arriving to the first answer byte sent to the client, by site and model.',
    labelNames: ['site', 'model'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const llmRefusals = new Counter({
    name: 'gatehouse_llm_refusals_total',
    help: 'LLM requests refused by the llm stage, by site and error code.',
    labelNames: ['site', 'code'] as const,
    registers: [registry],
  });
  const llmSettleFailures = new Counter({
    name: 'gatehouse_llm_settle_failures_total',
    help: 'LLM calls whose usage could not be charged to the token budgets (store unreachable for about a minute of retries), by site.',
    labelNames: ['site'] as const,
    registers: [registry],
  });

  const dependencyUp = new Gauge({
    name: 'gatehouse_dependency_up',
    help: '1 while a dependency works, 0 while it is down and what needs it fails closed, by dependency id (rate_limit_store, token_budget_store, revocation_set, identity_registry, audit_store, jwks:<url>, upstream:<site>:<origin>, certificate:<name>).',
    labelNames: ['dependency'] as const,
    registers: [registry],
  });
  const dependencyTransitions = new Counter({
    name: 'gatehouse_dependency_transitions_total',
    help: 'Dependency state changes, by dependency id and the state entered (down, up); each is one log event.',
    labelNames: ['dependency', 'state'] as const,
    registers: [registry],
  });
  const acmeAccounts = new Counter({ name: 'gatehouse_acme_accounts_created_total', help: 'ACME accounts created.', registers: [registry] });
  const acmeServerOrders = new Counter({ name: 'gatehouse_acme_orders_created_total', help: 'ACME orders created.', registers: [registry] });
  const acmeCertificatesIssued = new Counter({
    name: 'gatehouse_acme_certificates_issued_total',
    help: 'Certificates issued by the ACME server, by CSR key type (p256, p384, ed25519, rsa).',
    labelNames: ['key_type'] as const,
    registers: [registry],
  });
  const acmeCertificatesRevoked = new Counter({
    name: 'gatehouse_acme_certificates_revoked_total',
    help: 'Certificates revoked through the ACME server, by who asked (account, certificate_key).',
    labelNames: ['by'] as const,
    registers: [registry],
  });
  const acmeValidations = new Counter({
    name: 'gatehouse_acme_validations_total',
    help: 'ACME challenge validations by type (http-01, tls-alpn-01) and result (valid, invalid).',
    labelNames: ['type', 'result'] as const,
    registers: [registry],
  });
  const acmeErrors = new Counter({
    name: 'gatehouse_acme_errors_total',
    help: 'ACME problem documents sent, by RFC 8555 error type (badNonce, unauthorized, rejectedIdentifier, ...).',
    labelNames: ['type'] as const,
    registers: [registry],
  });

  // prom-client's labels() hashes label values on every call; cache the children.
  const reqChildren = new Map<string, ReturnType<typeof requests.labels>>();
  const durChildren = new Map<string, ReturnType<typeof duration.labels>>();
  function countRequest(site: string, status: number, seconds: number): void {
    const key = site + ' ' + status;
    let c = reqChildren.get(key);
    if (c === undefined) {
      c = requests.labels(site, String(status));
      reqChildren.set(key, c);
    }
    c.inc();
    let h = durChildren.get(site);
    if (h === undefined) {
      h = duration.labels(site);
      durChildren.set(site, h);
    }
    h.observe(seconds);
  }

  const http2Sessions = new Counter({ name: 'gatehouse_http2_sessions_total', help: 'HTTP/2 connections accepted on public listeners (ALPN h2).', registers: [registry] });
  const http2SessionsActive = new Gauge({ name: 'gatehouse_http2_sessions_active', help: 'HTTP/2 connections open now.', registers: [registry] });
  const http2Streams = new Counter({ name: 'gatehouse_http2_streams_total', help: 'HTTP/2 streams that became exchanges (requests).', registers: [registry] });
  const http2StreamResets = new Counter({ name: 'gatehouse_http2_stream_resets_total', help: 'HTTP/2 streams the client reset (RST_STREAM) before their answer was complete.', registers: [registry] });
  const http2Goaways = new Counter({ name: 'gatehouse_http2_goaway_total', help: 'GOAWAY frames sent by the gateway, by reason (shutdown, idle, rapid_reset).', labelNames: ['reason'] as const, registers: [registry] });
  const http2SessionErrors = new Counter({ name: 'gatehouse_http2_session_errors_total', help: 'HTTP/2 connections closed on a protocol error, flood or limit, by error code.', labelNames: ['code'] as const, registers: [registry] });
  const requestsByProtocol = new Counter({ name: 'gatehouse_http_requests_by_protocol_total', help: 'Requests finished, by protocol (http/1.1, h2).', labelNames: ['protocol'] as const, registers: [registry] });
  return {
    http2Sessions,
    http2SessionsActive,
    http2Streams,
    http2StreamResets,
    http2Goaways,
    http2SessionErrors,
    requestsByProtocol,
    registry,
    requests,
    duration,
    upstreamErrors,
    upstreamRequests,
    upstreamFailures,
    upstreamEjections,
    upstreamHealthy,
    upstreamRetries,
    ipDenials,
    rateLimitRefusals,
    rateLimitStoreErrors,
    clientErrors,
    configReloads,
    configLastReload,
    inflight,
    info,
    tlsCertExpiry,
    tlsCertExpiring,
    tlsRenewals,
    tlsRenewalFailures,
    tlsHandshakeFailures,
    acmeOrders,
    acmeRenewAt,
    auditRecords,
    auditWriteSeconds,
    auditSpoolBytes,
    auditStoreErrors,
    auditVerifyFailures,
    auditLastCheckpoint,
    auditRefusals,
    auditArchiveSegments,
    auditArchiveBytes,
    auditArchiveFailures,
    auditArchiveUp,
    auditArchiveLastSuccess,
    auditArchiveLag,
    auditArchivePruned,
    auditArchiveObjectLock,
    tokenVerifications,
    revocationEntries,
    revocationCurrent,
    identityRegistryCurrent,
    policyDecisions,
    policyCache,
    policyReloads,
    llmCalls,
    llmTokens,
    llmUsageUnknown,
    llmTimeToFirstByte,
    llmRefusals,
    llmSettleFailures,
    dependencyUp,
    dependencyTransitions,
    acmeAccounts,
    acmeServerOrders,
    acmeCertificatesIssued,
    acmeCertificatesRevoked,
    acmeValidations,
    acmeErrors,
    countRequest,
  };
}
