/**
 * Admin API authentication: a bearer token (admin.token_file) or a client certificate
 * (admin.client_certificates, src/admin/client-cert.ts); either one suffices. Refused by
 * default: with neither configured every API route answers 403
 * admin_auth_not_configured.
 *
 * The answer carries only the code; the decision's cause is for the log line
 * (`admin_request`), so a client never learns which check failed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { checkClientCertificate, type ClientCertPolicy } from './client-cert.js';

export interface AdminAuth {
  /** The admin bearer token, or null when none is configured. */
  readonly token: string | null;
  /** Client-certificate authentication, or null when it is not configured. */
  readonly clientCerts: ClientCertPolicy | null;
}

export interface CertDetails {
  readonly subject: string;
  readonly serial: string;
}

export type AdminAuthDecision =
  | { readonly ok: true; readonly method: 'token' | 'client_certificate'; readonly principal: string; readonly cert?: CertDetails }
  | {
      readonly ok: false;
      readonly code: 'admin_auth_not_configured' | 'admin_unauthorized' | 'admin_forbidden';
      readonly cause: string;
      readonly tlsError?: string;
      readonly cert?: CertDetails;
    };

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time check of a bearer token (hashing first makes the lengths equal). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(header);
  if (!m) return false;
  return timingSafeEqual(digest(m[1] as string), digest(token));
}

export function authenticateAdmin(req: IncomingMessage, auth: AdminAuth, now: number): AdminAuthDecision {
  if (auth.token === null && auth.clientCerts === null) return { ok: false, code: 'admin_auth_not_configured', cause: 'no_admin_authentication' };
  if (auth.token !== null && bearerMatches(req.headers.authorization, auth.token)) return { ok: true, method: 'token', principal: 'token' };
  const tokenCause = req.headers.authorization === undefined ? 'no_credentials' : auth.token === null ? 'token_not_configured' : 'token_mismatch';
  if (auth.clientCerts === null) return { ok: false, code: 'admin_unauthorized', cause: tokenCause };
  const c = checkClientCertificate(req.socket, auth.clientCerts, now);
  switch (c.kind) {
    case 'allowed':
      return { ok: true, method: 'client_certificate', principal: c.principal, cert: { subject: c.subject, serial: c.serial } };
    case 'forbidden':
      return { ok: false, code: 'admin_forbidden', cause: 'certificate_identity_not_allowed', cert: { subject: c.subject, serial: c.serial } };
    case 'rejected':
      return { ok: false, code: 'admin_unauthorized', cause: c.cause, ...(c.tlsError !== undefined ? { tlsError: c.tlsError } : {}) };
    case 'none':
      return { ok: false, code: 'admin_unauthorized', cause: tokenCause };
  }
}
