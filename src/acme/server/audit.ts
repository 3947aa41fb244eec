/**
 * ACME issuance and revocation as audit records (docs/acme.md#audit): the exchange
 * record shape with `site` "acme", `stage` "acme", `code` the event and `rule` the
 * certificate serial, `subject` the account id (the names it covers are in the log line
 * and the ACME store, by serial) — so `gatehouse audit verify` and every
 * archive reader handle them with no new member.
 */
import { emptyBody, type AuditBody } from '../../audit/record.js';
import type { AcmeAuditEvent } from './server.js';

export function acmeAuditBody(e: AcmeAuditEvent): AuditBody {
  const b = emptyBody('exchange', new Date().toISOString());
  b.site = 'acme';
  b.route = e.action === 'certificate_issued' ? 'finalize' : 'revoke-cert';
  b.client_ip = e.clientIp;
  b.peer_ip = e.clientIp;
  b.subject = e.account;
  b.method = 'POST';
  b.path = e.path;
  b.status = 200;
  b.decision = 'allowed';
  b.stage = 'acme';
  b.rule = e.serial;
  b.code = e.action === 'certificate_issued' ? 'acme_certificate_issued' : 'acme_certificate_revoked';
  b.count = 1;
  return b;
}
