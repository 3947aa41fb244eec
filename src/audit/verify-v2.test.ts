/**
 * The verifier on chain v2 (docs/audit.md, "Verifying"): every way a v2 stream can be
 * altered is named by kind and seq, with the HMAC keyring (seals checked) and as a third
 * party (leaves, seqs, batch boundaries, Merkle roots and signed checkpoints only). Each
 * case verifies the same records twice — as stored text (the fast path) and as parsed
 * objects (the full path) — and the two reports must be identical. v1 streams continued
 * in v2 (an upgraded writer) verify, and tampering across the switch is named.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonical } from './canonical.js';
import type { Checkpoint } from './checkpoint.js';
import { recordData } from './chain.js';
import { chainBody, buildChain, buildChainV2, HMAC_K1, HMAC_K2, keyring, testSigner, v1End, type BuiltV2 } from './test-support.js';
import { LeafHasher, parseStoredV2, rootOfLeaves, sealBatch, sealOf, storedV2, V2 } from './v2.js';
import { verifyStream, type StreamReport, type VerifyItem } from './verify.js';
import { emptyBody, type AuditBody, type ChainFields } from './record.js';
import { macKey } from './chain-hash.js';

const S = 'gw-v2';
const ring = keyring({ k1: HMAC_K1, k2: HMAC_K2 }, 'k1');
const signer = testSigner();
// Batches 1-4, 5, 6-12, 13-15, 16-17, 18-21, 22, 23-26, 27-29, 30-31, 32-34, 35, 36-40;
// signed checkpoints at 12, 26 and 34.
const built = buildChainV2(S, 40, ring, signer, [12, 26, 34]);
const stored = built.rows.map((r) => r.data);
const cps: Checkpoint[] = built.checkpoints.map((c) => c.checkpoint);
const hasher = new LeafHasher();

type Verdict = Array<[string, number]>;

function objects(lines: readonly string[]): VerifyItem[] {
  return lines.map((l) => {
    try {
      return JSON.parse(l) as VerifyItem;
    } catch {
      return l;
    }
  });
}

/** Both forms, with and without the keyring: the text and object reports must agree. */
async function verdicts(lines: readonly string[], checkpoints: readonly Checkpoint[] = cps, stream = S): Promise<{ keyed: StreamReport; third: StreamReport }> {
  const keyed = await verifyStream(stream, lines, checkpoints, { keyring: ring, publicKey: signer.publicKey });
  const third = await verifyStream(stream, lines, checkpoints, { publicKey: signer.publicKey });
  assert.deepEqual(await verifyStream(stream, objects(lines), checkpoints, { keyring: ring, publicKey: signer.publicKey }), keyed, 'text and objects agree (keyring)');
  assert.deepEqual(await verifyStream(stream, objects(lines), checkpoints, { publicKey: signer.publicKey }), third, 'text and objects agree (third party)');
  return { keyed, third };
}

const kinds = (r: StreamReport): Verdict => r.problems.map((p) => [p.kind, p.seq]);

async function expect(lines: readonly string[], keyed: Verdict, third: Verdict, checkpoints?: readonly Checkpoint[]): Promise<{ keyed: StreamReport; third: StreamReport }> {
  const v = await verdicts(lines, checkpoints);
  assert.deepEqual(kinds(v.keyed), keyed, `keyring: ${JSON.stringify(v.keyed.problems, null, 1)}`);
  assert.deepEqual(kinds(v.third), third, `third party: ${JSON.stringify(v.third.problems, null, 1)}`);
  return v;
}

/** The record with `seq` rewritten by `edit` (its body), its leaf recomputed, its seal members kept. */
function rewrite(data: string, edit: (r: Record<string, unknown>) => void, leafToo = true): string {
  const p = parseStoredV2(data);
  assert.ok(p !== null);
  const o = JSON.parse(data) as Record<string, unknown>;
  edit(o);
  const canon = canonical(o as unknown as AuditBody & ChainFields);
  return storedV2(canon, leafToo ? hasher.leaf(canon) : p.leaf, p.seal === null ? null : { first: p.sealFirst, seal: p.seal });
}

/** Batch [first, last] re-sealed over its own records with `key` (its records' kid set to `kid`), after `prev`. */
function reseal(lines: string[], first: number, last: number, key: Buffer, kid: string, prev: string): string {
  const canons: string[] = [];
  for (let s = first; s <= last; s++) {
    const o = JSON.parse(lines[s - 1] as string) as Record<string, unknown>;
    o.kid = kid;
    canons.push(canonical(o as unknown as AuditBody & ChainFields));
  }
  const b = sealBatch(canons, first, prev, macKey(key));
  for (let s = first; s <= last; s++) lines[s - 1] = b.data[s - first] as string;
  return b.seal;
}

const sealAt = (seq: number): string => (built.batches.find((b) => b.last === seq) as BuiltV2['batches'][number]).seal;

describe('verify v2: intact streams', () => {
  it('an intact v2 stream verifies with and without the keyring, as text and as objects', async () => {
    const { keyed, third } = await expect(stored, [], []);
    assert.equal(keyed.records, 40);
    assert.equal(keyed.lastSeq, 40);
    assert.equal(keyed.latestCheckpointSeq, 34);
    assert.equal(keyed.macsChecked, true);
    assert.equal(third.macsChecked, false);
    // The chain value at the end is the last batch's seal.
    assert.equal(keyed.end?.hash, sealAt(40));
    assert.equal(keyed.end?.frontier.size, 40);
  });

  it('every batch size from 1 to 9 and a single batch of the whole stream verify', async () => {
    for (const size of [1, 2, 3, 5, 8, 9, 40]) {
      const b = buildChainV2(S, 40, ring, signer, [], { batch: [size] });
      const rep = await verifyStream(S, b.rows.map((r) => r.data), [], { keyring: ring });
      assert.deepEqual(rep.problems, [], `batch size ${size}`);
    }
  });

  it('a v1 stream continued in v2 verifies, and its checkpoints cover both (v1 hash leaves, v2 leaves)', async () => {
    const v1 = buildChain(S, 10, ring, signer, [10]);
    const v2 = buildChainV2(S, 30, ring, signer, [20, 30], { from: v1End(v1.records) });
    const lines = [...v1.records.map((r) => recordData(r)), ...v2.rows.map((r) => r.data)];
    const all = [...v1.checkpoints, ...v2.checkpoints].map((c) => c.checkpoint);
    const v = await verdicts(lines, all);
    assert.deepEqual(v.keyed.problems, []);
    assert.deepEqual(v.third.problems, []);
    assert.equal(v.keyed.records, 30);
    // Continuing from a point inside the stream (an archive's end) works on the mixed chain too.
    const rest = await verifyStream(S, lines.slice(20), all, { keyring: ring, publicKey: signer.publicKey, from: { seq: 20, hash: (v2.batches.find((b) => b.last === 20) as { seal: string }).seal, frontier: v2.checkpoints[0]?.frontier as { size: number; stack: Array<string | null> } } });
    assert.deepEqual(rest.problems, []);
  });
});

describe('verify v2: every alteration is named', () => {
  it('content changed, leaf kept: "modified" at that record, by anyone', async () => {
    const lines = [...stored];
    lines[6] = (lines[6] as string).replace('"status":200', '"status":201');
    const v = await expect(lines, [['modified', 7]], [['modified', 7]]);
    assert.match(v.keyed.problems[0]?.detail ?? '', /record 7's content does not match its leaf/);
  });

  it('content and leaf rewritten: the seal names the batch (keyring); a later checkpoint names it for anyone', async () => {
    const lines = [...stored];
    lines[6] = rewrite(lines[6] as string, (o) => (o.status = 500));
    const v = await expect(
      lines,
      [
        ['modified', 6],
        ['modified', 12],
        ['modified', 26],
        ['modified', 34],
      ],
      [
        ['modified', 12],
        ['modified', 26],
        ['modified', 34],
      ],
    );
    assert.match(v.keyed.problems[0]?.detail ?? '', /the seal of batch 6\.\.12 does not verify with key "k1"/);
    assert.match(v.third.problems[0]?.detail ?? '', /Merkle root over records 1\.\.12 does not match/);
  });

  it('content and leaf rewritten after the latest checkpoint: only the keyring finds it (the seal)', async () => {
    const lines = [...stored];
    lines[37] = rewrite(lines[37] as string, (o) => (o.path = '/other'));
    await expect(lines, [['modified', 36]], []);
  });

  it('a seal changed: the batch and the boundary to the next batch (keyring), the checkpoint head (anyone)', async () => {
    const lines = [...stored];
    const s = stored[11] as string;
    lines[11] = s.replace(/"seal":"[0-9a-f]{2}/, (m) => `${m.slice(0, -2)}${m.slice(-2) === '00' ? '11' : '00'}`);
    await expect(
      lines,
      [
        ['modified', 6],
        ['modified', 12],
        ['modified', 12],
      ],
      [['modified', 12]],
    );
  });

  it('a seal removed from its record: the records it covered are named, and the checkpoint there', async () => {
    const lines = [...stored];
    const p = parseStoredV2(stored[14] as string);
    lines[14] = (stored[14] as string).slice(0, p?.end) + `,"leaf":"${p?.leaf}"}`;
    await expect(lines, [['modified', 13]], [['modified', 13]]);
    const at = [...stored];
    const q = parseStoredV2(stored[11] as string);
    at[11] = (stored[11] as string).slice(0, q?.end) + `,"leaf":"${q?.leaf}"}`;
    const v = await expect(
      at,
      [
        ['modified', 6],
        ['modified', 12],
      ],
      [
        ['modified', 6],
        ['modified', 12],
      ],
    );
    assert.match(v.keyed.problems[1]?.detail ?? '', /carries no seal, but the signed checkpoint at seq 12/);
  });

  it('seal_first changed: "modified" at the sealing record', async () => {
    for (const f of [5, 7, 12, 13]) {
      const lines = [...stored];
      lines[11] = (stored[11] as string).replace('"seal_first":6}', `"seal_first":${f}}`);
      const v = await verdicts(lines);
      for (const rep of [v.keyed, v.third]) assert.ok(rep.problems.some((p) => p.kind === 'modified' && (p.seq === 12 || p.seq === 6)), `seal_first ${f}: ${JSON.stringify(rep.problems)}`);
    }
  });

  it('a record deleted inside a batch, its sealing record, a whole batch: "deleted" with the seqs', async () => {
    const inside = stored.filter((_, i) => i !== 8);
    await expect(
      inside,
      [
        ['deleted', 9],
        ['modified', 12],
        ['modified', 26],
        ['modified', 34],
      ],
      [
        ['deleted', 9],
        ['modified', 12],
        ['modified', 26],
        ['modified', 34],
      ],
    );
    const sealing = stored.filter((_, i) => i !== 14);
    await expect(
      sealing,
      [
        ['deleted', 15],
        ['modified', 26],
        ['modified', 34],
      ],
      [
        ['deleted', 15],
        ['modified', 26],
        ['modified', 34],
      ],
    );
    const batch = stored.filter((_, i) => i < 12 || i > 14);
    await expect(
      batch,
      [
        ['deleted', 13],
        ['modified', 26],
        ['modified', 34],
      ],
      [
        ['deleted', 13],
        ['modified', 26],
        ['modified', 34],
      ],
    );
  });

  it('the tail cut inside a batch is "truncated" at the first record no seal covers; past a checkpoint too', async () => {
    const v = await expect(stored.slice(0, 38), [['truncated', 36]], [['truncated', 36]]);
    assert.match(v.keyed.problems[0]?.detail ?? '', /the stream ends inside a batch: records 36\.\.38 are not covered by a seal/);
    await expect(
      stored.slice(0, 33),
      [
        ['truncated', 32],
        ['truncated', 34],
      ],
      [
        ['truncated', 32],
        ['truncated', 34],
      ],
    );
  });

  it('a duplicated, a reordered and a foreign record: "inserted", "reordered", "inserted"', async () => {
    const dup = [...stored.slice(0, 20), stored[9] as string, ...stored.slice(20)];
    await expect(dup, [['inserted', 10]], [['inserted', 10]]);
    const swapped = [...stored];
    [swapped[16], swapped[17]] = [stored[17] as string, stored[16] as string];
    const v = await verdicts(swapped);
    for (const rep of [v.keyed, v.third]) assert.deepEqual(rep.problems.filter((p) => p.kind !== 'modified').map((p) => [p.kind, p.seq]), [['reordered', 17]]);
    const other = buildChainV2('gw-other', 3, ring, signer, []).rows.map((r) => r.data);
    await expect([...stored.slice(0, 5), other[0] as string, ...stored.slice(5)], [['inserted', 1]], [['inserted', 1]]);
  });

  it('a batch re-sealed with another key of the ring, or under a kid the ring does not know: "wrong_key"', async () => {
    const lines = [...stored];
    reseal(lines, 13, 15, HMAC_K2, 'k1', sealAt(12));
    // Its seal is a new chain value: the next batch, sealed over the old one, no longer follows.
    const v = await expect(
      lines,
      [
        ['wrong_key', 13],
        ['modified', 15],
      ],
      [],
    );
    assert.match(v.keyed.problems[0]?.detail ?? '', /batch 13\.\.15 claims key "k1" but its seal was made with key "k2"/);
    const unknown = [...stored];
    reseal(unknown, 13, 15, Buffer.alloc(32, 9), 'k9', sealAt(12));
    await expect(
      unknown,
      [
        ['wrong_key', 13],
        ['modified', 15],
        ['modified', 26],
        ['modified', 34],
      ],
      [
        ['modified', 26],
        ['modified', 34],
      ],
    );
  });

  it('a batch forged with a key outside the ring: the batch and the boundary after it', async () => {
    const lines = [...stored];
    reseal(lines, 13, 15, Buffer.alloc(32, 9), 'k1', sealAt(12));
    // Same records, same leaves: only the seal tells, and only with the keyring.
    const v = await expect(
      lines,
      [
        ['modified', 13],
        ['modified', 15],
      ],
      [],
    );
    assert.match(v.keyed.problems[1]?.detail ?? '', /the seal of batch 16\.\.17 does not verify over the chain value at seq 15/);
  });

  it('records of one batch naming different keys: "modified" at the first that differs', async () => {
    const lines = [...stored];
    lines[7] = rewrite(lines[7] as string, (o) => (o.kid = 'k2'));
    const v = await verdicts(lines);
    assert.deepEqual(kinds(v.keyed)[0], ['modified', 8]);
    assert.ok(v.keyed.problems.some((p) => p.seq === 8 && /names key "k2" but record 6 of its batch names "k1"/.test(p.detail)), JSON.stringify(v.keyed.problems));
    assert.ok(v.third.problems.some((p) => p.seq === 8 && p.kind === 'modified'));
  });

  it('a crash declared by a v2 restart record is a "gap"; one declaring checkpointed records lost is "truncated"', async () => {
    const restart = (after: number, seq: number) => {
      const b = emptyBody('restart', new Date(1_700_000_100_000).toISOString());
      b.count = seq - after - 1;
      b.lost_to = seq - 1;
      const from = buildChainV2(S, after, ring, signer, [12, 26, 34]).end;
      return buildChainV2(S, seq + 2, ring, signer, [], { from: { ...from, seq: seq - 1 }, bodies: new Map([[seq, b]]), batch: [3] });
    };
    // Records 36..40 lost: the restart at 45 continues from the seal at 35.
    const crash = restart(35, 45);
    await expect([...stored.slice(0, 35), ...crash.rows.map((r) => r.data)], [['gap', 36]], [['gap', 36]]);
    // A forged restart declaring 30..40 lost, where the checkpoint at 34 vouched for 30..34.
    const forged = restart(29, 45);
    const v = await expect([...stored.slice(0, 29), ...forged.rows.map((r) => r.data)], [['truncated', 30]], [['truncated', 30]]);
    assert.match(v.keyed.problems[0]?.detail ?? '', /covered by the signed checkpoint at seq 34/);
  });

  it('an entry that is not JSON or lacks a member: "malformed"', async () => {
    const lines = [...stored];
    lines[2] = 'not json';
    const v = await verdicts(lines);
    assert.deepEqual(kinds(v.keyed).slice(0, 2), [
      ['malformed', 3],
      ['deleted', 3],
    ]);
    const noLeaf = [...stored];
    noLeaf[2] = JSON.stringify({ ...(JSON.parse(stored[2] as string) as object), leaf: undefined });
    const w = await verdicts(noLeaf);
    assert.match(w.keyed.problems[0]?.detail ?? '', /record: bad leaf/);
  });

  it('a checkpoint whose signature does not verify: "bad_checkpoint_signature"', async () => {
    const bad = cps.map((c) => (c.seq === 26 ? { ...c, seq: 27 } : c));
    await expect(stored, [['bad_checkpoint_signature', 27]], [['bad_checkpoint_signature', 27]], bad);
  });
});

describe('verify v2: across the switch from v1', () => {
  const v1 = buildChain(S, 10, ring, signer, [10]);
  const v2 = buildChainV2(S, 30, ring, signer, [20, 30], { from: v1End(v1.records) });
  const lines = () => [...v1.records.map((r) => recordData(r)), ...v2.rows.map((r) => r.data)];
  const all = [...v1.checkpoints, ...v2.checkpoints].map((c) => c.checkpoint);

  it('the last v1 record changed (its hash recomputed, MAC left): named at that record', async () => {
    const l = lines();
    const o = JSON.parse(l[9] as string) as Record<string, unknown>;
    o.status = 500;
    const { RecordHasher } = await import('./chain-hash.js');
    const h = new RecordHasher();
    h.load(o.prev_hash as string, canonical(o as unknown as AuditBody & ChainFields));
    o.hash = h.hash(o.mac as string);
    l[9] = JSON.stringify(o);
    const v = await verdicts(l, all);
    // The checkpoint at 10 names it too; later checkpoints cover the changed hash.
    assert.deepEqual(kinds(v.keyed), [
      ['modified', 10],
      ['modified', 10],
      ['modified', 20],
      ['modified', 30],
    ]);
    assert.match(v.keyed.problems[1]?.detail ?? '', /record 10 was changed: the MAC of record 10 does not verify with key "k1", and the batch after it is not sealed over its hash/);
    assert.deepEqual(kinds(v.third), [
      ['modified', 10],
      ['modified', 20],
      ['modified', 30],
    ]);
  });

  it('the first v2 batch re-sealed over another chain value: named at the boundary', async () => {
    const l = lines();
    reseal(l, 11, 14, HMAC_K1, 'k1', '00'.repeat(32));
    const v = await verdicts(l, all);
    assert.deepEqual(kinds(v.keyed), [['modified', 11], ['modified', 14]]);
    assert.deepEqual(kinds(v.third), []);
  });

  it('the first v2 record deleted, or a v2 record put before the last v1 one', async () => {
    const l = lines();
    const del = [...l.slice(0, 10), ...l.slice(11)];
    assert.deepEqual(kinds((await verdicts(del, all)).keyed)[0], ['deleted', 11]);
    const swapped = [...l];
    [swapped[9], swapped[10]] = [l[10] as string, l[9] as string];
    const v = await verdicts(swapped, all);
    assert.ok(v.keyed.problems.some((p) => p.kind === 'reordered' && p.seq === 10), JSON.stringify(v.keyed.problems));
  });

  it('a v1 record after v2 batches must chain to the last seal', async () => {
    const { Chain } = await import('./chain.js');
    const good = new Chain(S, 30, v2.end.prev, v2.end.merkle);
    const bad = new Chain(S, 30, '11'.repeat(32), v2.end.merkle);
    const l = lines();
    assert.deepEqual((await verdicts([...l, recordData(good.seal(chainBody(31), 31, ring))], all)).keyed.problems, []);
    assert.deepEqual(kinds((await verdicts([...l, recordData(bad.seal(chainBody(31), 31, ring))], all)).keyed), [['modified', 30]]);
  });
});

describe('v2 arithmetic agrees with the verifier', () => {
  it('rootOfLeaves and sealOf: the seal stored in a batch is HMAC over prev, a, b and the batch root', () => {
    const b = built.batches[2] as BuiltV2['batches'][number];
    const leaves = built.rows.slice(b.first - 1, b.last).map((r) => r.hash);
    assert.equal(sealOf(ring.active, sealAt(5), b.first, b.last, rootOfLeaves(leaves)), b.seal);
    assert.equal(V2, 2);
  });
});
