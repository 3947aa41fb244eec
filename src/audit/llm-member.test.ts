/**
 * The optional `llm` member of the audit record (docs/audit.md#the-llm-member): present
 * only on LLM calls, canonical as RFC 8785 (sorted members, JSON.stringify values), the
 * canonical form of every other record unchanged, and such records verify on both of the
 * verifier's paths (stored bytes with the keyring, and the rebuilt canonical form).
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { canonical, genesis } from './canonical.js';
import { Chain, recordData } from './chain.js';
import { MerkleAccumulator } from './merkle.js';
import { CANONICAL_FIELDS, emptyBody, type AuditLlm, type ChainedRecord } from './record.js';
import { HMAC_K1, keyring } from './test-support.js';
import { verifyStream } from './verify.js';

const LLM: AuditLlm = { completion_tokens: 5, credential: 'subject', endpoint: 'chat', model: 'fast', prompt_tokens: 12, rewritten: true, streamed: true, total_tokens: 17, ttfb_us: 1234, upstream_model: 'gpt-"x"', usage: 'reported' };

function jcs(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(jcs).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${jcs(o[k])}`)
    .join(',')}}`;
}

test('a record with llm is canonical as RFC 8785; one without keeps its old form', () => {
  const b = emptyBody('exchange', '2026-01-02T03:04:05.678Z');
  const plain = { ...b, v: 1 as const, stream: 's', seq: 1, kid: 'k1' };
  const pick = (r: Record<string, unknown>) => Object.fromEntries([...CANONICAL_FIELDS, 'llm'].map((f) => [f, r[f]]));
  assert.equal(canonical(plain), jcs(pick(plain as unknown as Record<string, unknown>)));
  assert.doesNotMatch(canonical(plain), /llm/);
  const withLlm = { ...plain, llm: LLM };
  assert.equal(canonical(withLlm), jcs(pick(withLlm as unknown as Record<string, unknown>)));
  assert.match(canonical(withLlm), /"latency_us":null,"llm":\{"completion_tokens":5,.*"usage":"reported"\},"lost_to":null/);
  assert.throws(() => canonical({ ...plain, llm: { ...LLM, streamed: 'yes' } as unknown as AuditLlm }), /llm\.streamed/);
  assert.throws(() => canonical({ ...plain, llm: { ...LLM, total_tokens: 1.5 } }), /llm\.total_tokens/);
});

test('a chain with llm records verifies on the fast and the full path; a changed usage does not', async () => {
  const ring = keyring({ k1: HMAC_K1 }, 'k1');
  const chain = new Chain('llm-s', 0, genesis('llm-s').toString('hex'), new MerkleAccumulator());
  const records: ChainedRecord[] = [];
  for (let i = 1; i <= 6; i++) {
    const b = emptyBody('exchange', new Date(1_700_000_000_000 + i * 1000).toISOString());
    b.request_id = `r${i}`;
    b.subject = 'agent-7';
    if (i % 2 === 0) b.llm = { ...LLM, total_tokens: i };
    records.push(chain.seal(b, i, ring));
  }
  const lines = records.map((r) => recordData(r));
  const fast = await verifyStream('llm-s', lines, [], { keyring: ring });
  const full = await verifyStream('llm-s', lines.map((l) => JSON.parse(l) as ChainedRecord), [], { keyring: ring });
  for (const rep of [fast, full]) {
    assert.equal(rep.records, 6);
    assert.deepEqual(rep.problems, []);
  }
  const tampered = lines.map((l, i) => (i === 3 ? l.replace('"total_tokens":4', '"total_tokens":1') : l));
  assert.notDeepEqual(tampered, lines);
  const bad = await verifyStream('llm-s', tampered, [], { keyring: ring });
  assert.equal(bad.problems[0]?.seq, 4);
});
