/**
 * ACME errors: RFC 7807 problem documents whose `type` is one of RFC 8555 §6.7's
 * `urn:ietf:params:acme:error:*` (the stable code a client matches on). `detail` is a
 * generic sentence; the full cause goes to the log only.
 */
export const ACME_ERRORS = {
  accountDoesNotExist: 400,
  alreadyRevoked: 400,
  badCSR: 400,
  badNonce: 400,
  badPublicKey: 400,
  badRevocationReason: 400,
  badSignatureAlgorithm: 400,
  connection: 400,
  externalAccountRequired: 403,
  incorrectResponse: 403,
  malformed: 400,
  orderNotReady: 403,
  rateLimited: 429,
  rejectedIdentifier: 400,
  serverInternal: 500,
  tls: 400,
  unauthorized: 403,
  unsupportedContact: 400,
  unsupportedIdentifier: 400,
  dns: 400,
} as const;

export type AcmeErrorType = keyof typeof ACME_ERRORS;

export const ACME_ERROR_PREFIX = 'urn:ietf:params:acme:error:';

export class AcmeProblem extends Error {
  readonly status: number;
  constructor(
    readonly type: AcmeErrorType,
    readonly detail: string,
    opts: { status?: number; extra?: Record<string, unknown> } = {},
  ) {
    super(`${type}: ${detail}`);
    this.status = opts.status ?? ACME_ERRORS[type];
    this.extra = opts.extra ?? {};
  }
  readonly extra: Record<string, unknown>;

  toJSON(): Record<string, unknown> {
    return { type: ACME_ERROR_PREFIX + this.type, detail: this.detail, status: this.status, ...this.extra };
  }
}
