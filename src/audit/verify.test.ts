/**
 * The verifier's fast path (records in their stored form, checked over their stored bytes
 * when the keyring is given) must reach the same verdicts as the full path (parse, rebuild
 * the canonical form, check). Every case here verifies the same stream twice: as stored
 * strings (fast path, falling back to the full one for what it does not accept) and as
 * parsed objects (the full path only), and the two reports must be identical — for intact
 * streams and for several hundred tamperings of the stored text: single characters changed
 * anywhere, chain values altered or upper-cased, records re-serialized with another member
 * order or whitespace (same meaning: still valid), swapped, dropped, duplicated, re-made
 * with another key of the ring.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { recordData } from './chain.js';
import type { Checkpoint } from './checkpoint.js';
import { exportRecords, verifyExport } from './sources.js';
import { buildChain, HMAC_K1, HMAC_K2, keyring, testSigner } from './test-support.js';
import { RecordHasher } from './chain-hash.js';
import { authentic, verifyStream, type StreamReport } from './verify.js';

const S = 'verify-fast';
const ring = keyring({ k1: HMAC_K1, k2: HMAC_K2 }, 'k1');
const signer = testSigner();
const built = buildChain(S, 40, ring, signer, [10, 20, 30]);
const stored = built.records.map((r) => recordData(r));
const cps: Checkpoint[] = built.checkpoints.map((c) => c.checkpoint);

/** A deterministic PRNG (mulberry32): the same cases on every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function both(lines: string[]): Promise<{ fast: StreamReport; full: StreamReport }> {
  const objects = lines.map((l) => {
    try {
      return JSON.parse(l) as object;
    } catch {
      return l; // not JSON: the full path reports it from the text either way
    }
  });
  const fast = await verifyStream(S, lines, cps, { keyring: ring });
  const full = await verifyStream(S, objects as never, cps, { keyring: ring });
  return { fast, full };
}

async function same(lines: string[], what: string): Promise<StreamReport> {
  const { fast, full } = await both(lines);
  assert.deepEqual(fast, full, what);
  return fast;
}

test('an intact stream verifies on the fast path with no problem', async () => {
  // The fast path accepts every intact stored record (and gives its chain fields)…
  const hasher = new RecordHasher();
  const member = `,"stream":${JSON.stringify(S)},"subject":`;
  let prev = built.records[0]?.prev_hash as string;
  for (const [i, s] of stored.entries()) {
    const r = built.records[i];
    assert.deepEqual(authentic(s, member, prev, ring, hasher), { seq: r?.seq, stream: '', kid: 'k1', kind: 'exchange', count: 1, lost_to: null, prev_hash: r?.prev_hash, mac: r?.mac, hash: r?.hash });
    prev = r?.hash as string;
  }
  // …and nothing that is not exactly that: another form, another stream, a key not in the ring.
  assert.equal(authentic(JSON.stringify(built.records[0]), member, built.records[0]?.prev_hash as string, ring, hasher), null);
  assert.equal(authentic(stored[0] as string, ',"stream":"other","subject":', built.records[0]?.prev_hash as string, ring, hasher), null);
  assert.equal(authentic(stored[0] as string, member, built.records[0]?.prev_hash as string, keyring({ k2: HMAC_K2 }, 'k2'), hasher), null);
  assert.equal(authentic(stored[0] as string, member, built.records[0]?.prev_hash as string, keyring({ k1: HMAC_K2 }, 'k1'), hasher), null);
  const rep = await same(stored, 'intact');
  assert.equal(rep.problems.length, 0);
  assert.equal(rep.records, 40);
  assert.equal(rep.lastSeq, 40);
});

test('the fast path and the full path agree on every single-character change of the stored text', async () => {
  const rand = rng(4242);
  const chars = ['x', '0', '9', 'f', 'A', '"', '\\', ',', ':', '}', ' ', 'é'];
  let detected = 0;
  for (let n = 0; n < 300; n++) {
    const i = Math.floor(rand() * stored.length);
    const s = stored[i] as string;
    const at = Math.floor(rand() * s.length);
    const c = chars[Math.floor(rand() * chars.length)] as string;
    if (s[at] === c) continue;
    const lines = [...stored];
    lines[i] = s.slice(0, at) + c + s.slice(at + 1);
    const rep = await same(lines, `record ${i + 1}, offset ${at}, ${JSON.stringify(s[at])} -> ${JSON.stringify(c)}`);
    if (rep.problems.length > 0) detected++;
  }
  // Nearly every change is a problem; the few that are not only change the text's form
  // (e.g. an escape for a plain character), which both paths treat as the same record.
  assert.ok(detected > 250, `${detected} of ~300 changes detected`);
});

test('the fast path and the full path agree on altered chain values, re-serialized records and reordering', async () => {
  const edits: Array<[string, (l: string[]) => void]> = [
    ['upper-case prev_hash', (l) => (l[6] = (l[6] as string).replace(/"prev_hash":"([0-9a-f]{64})"/, (_m, h: string) => `"prev_hash":"${h.toUpperCase()}"`))],
    ['upper-case mac', (l) => (l[6] = (l[6] as string).replace(/"mac":"([0-9a-f]{64})"/, (_m, h: string) => `"mac":"${h.toUpperCase()}"`))],
    ['prev_hash not hex', (l) => (l[6] = (l[6] as string).replace(/"prev_hash":"[0-9a-f]{2}/, '"prev_hash":"zz'))],
    ['members in reverse order (same meaning)', (l) => (l[6] = JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(l[6] as string) as object).reverse())))],
    ['whitespace (same meaning)', (l) => (l[6] = JSON.stringify(JSON.parse(l[6] as string), null, 1))],
    ['members sorted, chain members first', (l) => (l[6] = JSON.stringify(JSON.parse(l[6] as string), ['prev_hash', 'mac', 'hash', ...Object.keys(JSON.parse(l[6] as string)).sort()]))],
    ['kid names the other key', (l) => (l[6] = (l[6] as string).replace('"kid":"k1"', '"kid":"k2"'))],
    ['kid unknown', (l) => (l[6] = (l[6] as string).replace('"kid":"k1"', '"kid":"k9"'))],
    ['stream renamed', (l) => (l[6] = (l[6] as string).replace(`"stream":"${S}"`, '"stream":"other"'))],
    ['seq changed', (l) => (l[6] = (l[6] as string).replace('"seq":7,', '"seq":8,'))],
    ['duplicate seq member', (l) => (l[6] = (l[6] as string).replace('"seq":7,', '"seq":7,"seq":9,'))],
    ['swapped records', (l) => ([l[11], l[12]] = [l[12] as string, l[11] as string])],
    ['a record dropped', (l) => l.splice(8, 1)],
    ['a record duplicated', (l) => l.splice(8, 0, l[8] as string)],
    ['the newest records dropped', (l) => l.splice(25)],
    ['a record that is not JSON', (l) => (l[3] = 'not json')],
    ['an empty line', (l) => (l[3] = '')],
  ];
  for (const [what, edit] of edits) {
    const lines = [...stored];
    edit(lines);
    await same(lines, what);
  }
});

test('records re-made with another key of the ring agree on both paths ("wrong_key" / "modified")', async () => {
  const other = keyring({ k1: HMAC_K2, k2: HMAC_K2 }, 'k1');
  const forged = buildChain(S, 40, other, signer, []).records.map((r) => recordData(r));
  const lines = [...stored.slice(0, 30), ...forged.slice(30)];
  const rep = await same(lines, 'tail re-made with k2 under kid k1');
  assert.ok(rep.problems.some((p) => p.kind === 'wrong_key'));
  const one = [...stored];
  one[15] = forged[15] as string;
  await same(one, 'one record re-made with k2 under kid k1');
});

test('without the keyring every record takes the full path (a third party), and an intact stream still verifies', async () => {
  const rep = await verifyStream(S, stored, cps, {});
  assert.equal(rep.problems.length, 0);
  assert.equal(rep.macsChecked, false);
});

test('an export keeps each record as its stored text: the keyring verifies it on the fast path, and a change is named', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-verify-export-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const lines = [JSON.stringify({ format: 'gatehouse-audit-export', v: 1, exported_at: new Date().toISOString() }), ...stored.map((d) => `{"record":${d}}`), ...cps.map((c) => JSON.stringify({ checkpoint: c }))];
  const file = join(dir, 'export.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  const read: unknown[] = [];
  for await (const r of exportRecords(file, S)) read.push(r);
  assert.deepEqual(read, stored);
  const [ok] = await verifyExport(file, { keyring: ring });
  assert.equal(ok?.problems.length, 0);
  assert.equal(ok?.records, 40);
  // One record's status changed, another line written with a space (kept as the parsed record).
  lines[5] = (lines[5] as string).replace('"status":200', '"status":201');
  lines[9] = (lines[9] as string).replace('{"record":', '{ "record":');
  writeFileSync(file, lines.join('\n') + '\n');
  const again: unknown[] = [];
  for await (const r of exportRecords(file, S)) again.push(r);
  assert.equal(typeof again[8], 'object');
  const [bad] = await verifyExport(file, { keyring: ring });
  // Seq 5 is named first; its new hash also breaks the link and the signed Merkle roots after it.
  assert.deepEqual([bad?.problems[0]?.seq, bad?.problems[0]?.kind], [5, 'modified']);
  assert.ok(bad?.problems.every((p) => p.kind === 'modified'));
});

test('seqs seen are told from seqs missing without a set of every seq: late, repeated and missing records', async () => {
  // 1..3, 6, 5, 5, 7..40: seq 4 missing, 5 late (reordered) then repeated (inserted).
  const order = [1, 2, 3, 6, 5, 5, ...Array.from({ length: 34 }, (_, i) => i + 7)];
  const rep = await same(order.map((n) => stored[n - 1] as string), 'late, repeated and missing');
  assert.deepEqual(
    rep.problems.filter((p) => p.kind !== 'modified').map((p) => [p.seq, p.kind]),
    [
      [4, 'deleted'],
      [5, 'reordered'],
      [5, 'inserted'],
    ],
  );
  // A repeat of a seq seen in order is "inserted", not "reordered".
  const again = await same([...stored.slice(0, 10), stored[2] as string, ...stored.slice(10)], 'repeat of seq 3');
  assert.deepEqual(again.problems.map((p) => [p.seq, p.kind]), [[3, 'inserted']]);
});
