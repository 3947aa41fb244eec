/**
 * Turning a finished (or, in sync mode, decided) exchange into a record body. On the
 * request path: plain field copies, no serialization (that happens in the writer's batch).
 */
import type { Exchange } from '../pipeline/exchange.js';
import { emptyBody, type AuditBody } from './record.js';

// The ISO text of the current second, reused while requests start within it: a Date and its
// toISOString cost ~1.5 µs per request, the cached prefix plus milliseconds a tenth of that.
let cachedSecond = NaN;
let cachedPrefix = '';

/** Epoch-ms wall time of a performance.now() instant, as Date#toISOString writes it. */
export function wallTime(perfMs: number): string {
  const ms = Math.floor(performance.timeOrigin + perfMs);
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    const iso = new Date(ms).toISOString();
    // Only the common form "YYYY-MM-DDTHH:MM:SS.mmmZ" is cached (years 0000–9999).
    if (iso.length !== 24) return iso;
    cachedSecond = second;
    cachedPrefix = iso.slice(0, 20);
  }
  const m = ms - second * 1000;
  return cachedPrefix + (m < 10 ? '00' : m < 100 ? '0' : '') + m + 'Z';
}

/**
 * `final`: the exchange is over (latency and bytes out are final). In sync mode the record
 * is made at decision time: latency_us is the time to the decision and bytes_out is null.
 */
export function exchangeBody(ex: Exchange, instance: string | null, final: boolean): AuditBody {
  const b = emptyBody('exchange', wallTime(ex.start));
  b.request_id = ex.id;
  b.instance = instance;
  const site = ex.site;
  if (site !== null) {
    b.site = site.id;
    b.route = site.config.path_prefix;
  }
  b.client_ip = ex.clientIp;
  b.peer_ip = ex.peerIp;
  const id = ex.identity;
  if (id !== null) {
    b.subject = id.subject;
    b.identity_type = id.type;
    b.role = id.role;
    b.domain = id.domain;
    b.agent = id.agent;
    b.token_id_hash = id.tokenIdHash;
  }
  b.method = ex.req.method ?? null;
  b.path = ex.normPath === '' ? null : ex.normPath;
  b.status = ex.status;
  const r = ex.refusal;
  if (r === null) {
    b.decision = 'allowed';
    b.stage = 'proxy';
  } else {
    // Closed without an answer as the decision about this request (IP filter, unknown
    // host) is a drop; a request not processed after a close was refused, not judged.
    b.decision = r.silent && r.code !== 'connection_closed' ? 'dropped' : 'refused';
    b.stage = r.stage;
    b.rule = r.rule ?? null;
    b.code = r.code;
  }
  // The policy stage notes the ids of the policies that decided (docs/policy.md).
  const policies = ex.notes?.policies;
  if (Array.isArray(policies)) b.policies = policies as string[];
  b.latency_us = Math.round((performance.now() - ex.start) * 1000);
  b.bytes_in = ex.bytesIn;
  b.bytes_out = final ? ex.bytesOut : null;
  // LLM calls only (docs/llm.md): the member is absent on every other record.
  const call = ex.llm;
  if (call !== null) {
    b.llm = {
      completion_tokens: call.completion_tokens,
      credential: call.credential,
      endpoint: call.endpoint,
      model: call.model,
      prompt_tokens: call.prompt_tokens,
      rewritten: call.rewritten,
      streamed: call.streamed,
      total_tokens: call.total_tokens,
      ttfb_us: call.ttfb_us,
      upstream_model: call.upstream_model,
      usage: call.usage,
    };
  }
  return b;
}
