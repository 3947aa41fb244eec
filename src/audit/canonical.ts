/**
 * The canonical form and the chain arithmetic (docs/audit.md is the normative text; the
 * test vectors in canonical.test.ts are computed from it):
 *
 *   canonical(r) = UTF-8 of a JSON object with exactly CANONICAL_FIELDS, keys in that
 *                  (code-point) order, no whitespace, strings escaped as ECMAScript
 *                  JSON.stringify does, integers in decimal, null as null, string
 *                  arrays (`policies`) as ["a","b"]
 *                  (identical to RFC 8785 JCS for this value domain)
 *   genesis(s)     = SHA-256("gatehouse-audit-v1:genesis:" ‖ s)
 *   mac            = HMAC-SHA256(key[kid], prev_hash ‖ canonical(r))
 *   hash           = SHA-256(prev_hash ‖ canonical(r) ‖ mac)
 *
 * prev_hash, mac and hash are 32 raw bytes in the computations and lowercase hex in
 * records and exports.
 */
import { createHash, createHmac, hash } from 'node:crypto';
import type { AuditBody, ChainFields } from './record.js';

type Canon = AuditBody & ChainFields;

function bad(field: string): never {
  throw new TypeError(`audit field ${field} has a value of the wrong type for the canonical form`);
}

// Per-type encoders; the field list below is CANONICAL_FIELDS spelled out, because a
// generic loop over field names costs ~3× more on the writer's and verifier's hot path.
// canonical.test.ts checks this against the sorted JSON.stringify definition.
// What JSON.stringify escapes in a string: '"', '\\', U+0000–U+001F and lone surrogates (any
// surrogate here, paired ones just take the slow path). A string without them is quoted
// as is — measured twice as fast per field as calling JSON.stringify, and the canonical
// form is ~25 string fields per record, on both the writer's and the verifier's path.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
function s(v: unknown, f: string): string {
  return v === null ? 'null' : typeof v === 'string' ? (NEEDS_ESCAPE.test(v) ? JSON.stringify(v) : `"${v}"`) : bad(f);
}
function n(v: unknown, f: string): string {
  return v === null ? 'null' : typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : bad(f);
}
function list(v: unknown, f: string): string {
  if (v === null) return 'null';
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) bad(f);
  return `[${(v as string[]).map((x) => JSON.stringify(x)).join(',')}]`;
}

function bool(v: unknown, f: string): string {
  return v === true ? 'true' : v === false ? 'false' : bad(f);
}

/**
 * The optional `llm` member (LLM calls only): an object with exactly these members in
 * code-point order, strings/safe integers/null as above and two booleans — still RFC 8785.
 */
function llm(v: unknown): string {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad('llm');
  const o = v as Record<string, unknown>;
  return (
    `{"completion_tokens":${n(o.completion_tokens, 'llm.completion_tokens')},"credential":${s(o.credential, 'llm.credential')},"endpoint":${s(o.endpoint, 'llm.endpoint')}` +
    `,"model":${s(o.model, 'llm.model')},"prompt_tokens":${n(o.prompt_tokens, 'llm.prompt_tokens')},"rewritten":${bool(o.rewritten, 'llm.rewritten')},"streamed":${bool(o.streamed, 'llm.streamed')}` +
    `,"total_tokens":${n(o.total_tokens, 'llm.total_tokens')},"ttfb_us":${n(o.ttfb_us, 'llm.ttfb_us')},"upstream_model":${s(o.upstream_model, 'llm.upstream_model')},"usage":${s(o.usage, 'llm.usage')}}`
  );
}

export function canonical(r: Canon): string {
  return (
    `{"agent":${s(r.agent, 'agent')},"bytes_in":${n(r.bytes_in, 'bytes_in')},"bytes_out":${n(r.bytes_out, 'bytes_out')},"client_ip":${s(r.client_ip, 'client_ip')}` +
    `,"code":${s(r.code, 'code')},"count":${n(r.count, 'count')},"decision":${s(r.decision, 'decision')},"domain":${s(r.domain, 'domain')}` +
    `,"first_time":${s(r.first_time, 'first_time')},"identity_type":${s(r.identity_type, 'identity_type')},"instance":${s(r.instance, 'instance')}` +
    `,"kid":${s(r.kid, 'kid')},"kind":${s(r.kind, 'kind')},"latency_us":${n(r.latency_us, 'latency_us')}${r.llm === undefined ? '' : `,"llm":${llm(r.llm)}`},"lost_to":${n(r.lost_to, 'lost_to')}` +
    `,"method":${s(r.method, 'method')},"path":${s(r.path, 'path')},"peer_ip":${s(r.peer_ip, 'peer_ip')},"policies":${list(r.policies, 'policies')}` +
    `,"request_id":${s(r.request_id, 'request_id')},"role":${s(r.role, 'role')},"route":${s(r.route, 'route')},"rule":${s(r.rule, 'rule')}` +
    `,"seq":${n(r.seq, 'seq')},"site":${s(r.site, 'site')},"stage":${s(r.stage, 'stage')},"status":${n(r.status, 'status')},"stream":${s(r.stream, 'stream')}` +
    `,"subject":${s(r.subject, 'subject')},"time":${s(r.time, 'time')},"token_id_hash":${s(r.token_id_hash, 'token_id_hash')},"v":${n(r.v, 'v')}}`
  );
}

export function genesis(stream: string): Buffer {
  return createHash('sha256').update(`gatehouse-audit-v1:genesis:${stream}`, 'utf8').digest();
}

export function mac(key: Buffer, prev: Buffer, canon: string): Buffer {
  return createHmac('sha256', key).update(prev).update(canon, 'utf8').digest();
}

export function recordHash(prev: Buffer, canon: string, m: Buffer): Buffer {
  // One-shot hash: cheaper than a Hash object per record on the writer's and verifier's hot loop.
  return hash('sha256', Buffer.concat([prev, Buffer.from(canon, 'utf8'), m]), 'buffer');
}

const HEX64 = /^[0-9a-f]{64}$/;
export function isHex32(s: unknown): s is string {
  return typeof s === 'string' && HEX64.test(s);
}
