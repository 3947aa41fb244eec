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
import { CANONICAL_FIELDS, type AuditBody, type ChainFields } from './record.js';

type Canon = AuditBody & ChainFields;

function value(v: unknown, field: string): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return `[${v.map((x) => JSON.stringify(x)).join(',')}]`;
  throw new TypeError(`audit field ${field} must be a string, a safe integer, a string array or null`);
}

export function canonical(r: Canon): string {
  let s = '{';
  for (let i = 0; i < CANONICAL_FIELDS.length; i++) {
    const f = CANONICAL_FIELDS[i] as (typeof CANONICAL_FIELDS)[number];
    if (i > 0) s += ',';
    s += `"${f}":${value(r[f], f)}`;
  }
  return s + '}';
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
