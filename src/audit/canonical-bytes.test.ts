/**
 * The writer's byte encoder of the canonical form against canonical() itself: the same
 * UTF-8 bytes and UTF-16 length for every kind of value, and the same refusal of a value
 * of the wrong type.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { canonical } from './canonical.js';
import { CanonicalWriter } from './canonical-bytes.js';
import { emptyBody, type AuditBody, type ChainFields } from './record.js';

type Canon = AuditBody & ChainFields;

const STRINGS = ['', 'a', 'GET', '/api/v1/items/42', 'quote " inside', 'back\\slash', 'tab\there', 'nul\u0000', '\u001f', 'é', 'ü-ñ', '日本語', '😀 astral', 'lone \ud800 high', 'lone \udc00 low', '\u007f', '\u0080', '\u2028\u2029', 'x'.repeat(5000)];
const NUMBERS = [0, 1, 9, 10, 99, 100, 1234567, -1, -10, -987654321, 2 ** 31, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER];

let seed = 7;
const rnd = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};
const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)] as T;
const str = () => (rnd(4) === 0 ? null : pick(STRINGS));
const num = () => (rnd(4) === 0 ? null : pick(NUMBERS));

function randomRecord(i: number): Canon {
  const b = emptyBody(pick(['exchange', 'restart', 'drop_aggregate'] as const), new Date(1_700_000_000_000 + i).toISOString()) as Canon;
  const o = b as unknown as Record<string, unknown>;
  for (const f of ['agent', 'client_ip', 'code', 'domain', 'first_time', 'identity_type', 'instance', 'method', 'path', 'peer_ip', 'request_id', 'role', 'route', 'rule', 'site', 'stage', 'subject', 'token_id_hash']) o[f] = str();
  for (const f of ['bytes_in', 'bytes_out', 'latency_us', 'lost_to', 'status']) o[f] = num();
  b.count = pick(NUMBERS);
  b.decision = pick(['allowed', 'refused', 'dropped', null] as const);
  b.stream = pick(['gw-0123456789abcdef', 'stream "q"', 'ström']);
  b.kid = pick(['k1', 'kid-é', 'k"2']);
  b.seq = i + 1;
  b.v = pick([1, 2]);
  if (rnd(6) === 0) b.policies = rnd(2) === 0 ? [] : ['p1', 'p"2', 'é'];
  if (rnd(8) === 0) b.llm = { completion_tokens: 5, credential: 'registry', endpoint: 'chat', model: 'm', prompt_tokens: 7, rewritten: false, streamed: true, total_tokens: 12, ttfb_us: null, upstream_model: 'é', usage: 'reported' };
  return b;
}

test('the bytes and UTF-16 length of every record are canonical()\'s, through buffer growth', () => {
  const w = new CanonicalWriter(Buffer.alloc(16), (need) => {
    const bigger = Buffer.alloc(need * 2);
    w.buf.copy(bigger, 0, 0, w.pos);
    return bigger;
  });
  const expected: Buffer[] = [];
  for (let i = 0; i < 3000; i++) {
    const r = randomRecord(i);
    const c = canonical(r);
    const before = w.pos;
    const n = w.write(r);
    assert.equal(n, Buffer.byteLength(c, 'utf8'), c);
    assert.equal(w.units, c.length, c);
    assert.ok(w.buf.subarray(before, before + n).equals(Buffer.from(c, 'utf8')), c);
    expected.push(Buffer.from(c, 'utf8'));
  }
  // Growing kept everything written before.
  assert.ok(w.buf.subarray(0, w.pos).equals(Buffer.concat(expected)));
});

test('a value of the wrong type is refused as canonical() refuses it, and nothing is left written', () => {
  const w = new CanonicalWriter(Buffer.alloc(1 << 16), () => assert.fail('no growth'));
  const ok = randomRecord(1);
  w.write(ok);
  const at = w.pos;
  for (const [f, v] of [
    ['status', 1.5],
    ['status', '200'],
    ['path', 42],
    ['latency_us', Number.NaN],
    ['seq', 2 ** 60],
    ['policies', 'p1'],
  ] as const) {
    const r = { ...randomRecord(2), [f]: v } as Canon;
    assert.throws(() => canonical(r), TypeError);
    assert.throws(() => w.write(r), TypeError, f);
    assert.equal(w.pos, at);
  }
});
