/**
 * Inclusion and consistency proofs (RFC 9162 §2.1.3–2.1.4) against signed checkpoints:
 * - for every tree size up to 40 and every index / older size, the built proof verifies
 *   against the reference Merkle root, and changing any byte of it (a path hash, the
 *   root, the index, a size) makes it fail;
 * - proofs built from a store verify offline with the public key alone; each altered byte
 *   of the proof file fails; a record whose content was changed fails;
 * - an auditor holding only an old checkpoint detects a rewritten history: the operator
 *   rewrites record 5 with its own keys and re-signs every checkpoint, and no consistency
 *   proof from the held checkpoint verifies;
 * - chain format v2 and a stream that switched from v1 to v2: every record proves against
 *   every checkpoint covering it, every pair of checkpoints is consistent across the
 *   switch, each altered byte of a v2 record's proof fails (its leaf is recomputed from
 *   its content; its seal is the head at the checkpoint's seq), and a rewrite of a v2
 *   record is detected from a held checkpoint.
 */
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Chain, v1StoreRecords } from './chain.js';
import { leafHex } from './chain-hash.js';
import { canonical, genesis } from './canonical.js';
import { consistencyPath, inclusionPath, merkleRoot, MerkleAccumulator, verifyConsistency, verifyInclusion } from './merkle.js';
import { proveConsistency, proveInclusion, storeProofSource, verifyProof, type ProofSource } from './proof.js';
import { buildChain, HMAC_K1, keyring, makeSqlite, testBody, testSigner } from './test-support.js';
import type { ChainedRecord } from './record.js';
import { isStoredV2, LeafHasher } from './v2.js';
import { saveStreamState } from './stream-state.js';
import { AuditWriter } from './writer.js';
import type { StoredCheckpoint } from './store/types.js';
import { buildMixedChain, type MixedChain } from './test-mixed-chain.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-proof';

const entries = Array.from({ length: 40 }, (_, i) => Buffer.alloc(32, i + 1).toString('hex'));
// The tree's leaves: H(0x00 ‖ entry), as for v1 record hashes; the reference root hashes the entries itself.
const leaves = entries.map(leafHex);
const flip = (hex: string, at = 0) => hex.slice(0, at) + (hex[at] === '0' ? '1' : '0') + hex.slice(at + 1);

/**
 * Changes every byte of a proof file's text, one at a time, to a character of the same
 * class (so that most stay syntactically valid), and requires each to fail; returns how
 * many were checked. Nothing in a proof is left unchecked: the checkpoint's members are
 * signed, the record's are hashed (or are its chain value at the checkpoint's seq).
 */
function everyByteFails(proof: object, pub: KeyObject): number {
  const text = JSON.stringify(proof);
  let checked = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    const to = /[0-9]/.test(c) ? String((Number(c) + 1) % 10) : /[a-f]/.test(c) ? (c === 'f' ? 'a' : String.fromCharCode(c.charCodeAt(0) + 1)) : /[A-Za-z_-]/.test(c) ? (c === 'x' ? 'y' : 'x') : null;
    if (to === null) continue;
    let altered: unknown;
    try {
      altered = JSON.parse(text.slice(0, i) + to + text.slice(i + 1));
    } catch {
      continue;
    }
    assert.notDeepEqual(verifyProof(altered, pub), [], `byte ${i} (${c} → ${to}) of a ${(proof as { type: string }).type} proof: ${text.slice(Math.max(0, i - 30), i + 30)}`);
    checked++;
  }
  return checked;
}

describe('RFC 9162 proofs over the checkpoints\' Merkle tree', () => {
  it('inclusion: every index of every size verifies; any altered byte fails', () => {
    for (let n = 1; n <= 40; n++) {
      const list = leaves.slice(0, n);
      const root = merkleRoot(entries.slice(0, n).map((e) => Buffer.from(e, 'hex'))).toString('hex');
      for (let m = 0; m < n; m++) {
        const path = inclusionPath(list, m);
        assert.ok(verifyInclusion(list[m] as string, m, n, path, root), `n=${n} m=${m}`);
        assert.ok(!verifyInclusion(flip(list[m] as string), m, n, path, root));
        assert.ok(!verifyInclusion(list[m] as string, m, n, path, flip(root, 63)));
        if (n > 1) assert.ok(!verifyInclusion(list[m] as string, (m + 1) % n, n, path, root), `index n=${n} m=${m}`);
        for (let j = 0; j < path.length; j++) {
          const bad = [...path];
          bad[j] = flip(bad[j] as string, 10);
          assert.ok(!verifyInclusion(list[m] as string, m, n, bad, root), `path[${j}] n=${n} m=${m}`);
        }
      }
    }
  });

  it('consistency: every older size of every size verifies; any altered byte fails', () => {
    for (let n = 1; n <= 40; n++) {
      const list = leaves.slice(0, n);
      const root = merkleRoot(entries.slice(0, n).map((e) => Buffer.from(e, 'hex'))).toString('hex');
      for (let m = 1; m <= n; m++) {
        const old = merkleRoot(entries.slice(0, m).map((e) => Buffer.from(e, 'hex'))).toString('hex');
        const path = consistencyPath(list, m);
        assert.ok(verifyConsistency(m, n, old, root, path), `m=${m} n=${n}`);
        assert.ok(!verifyConsistency(m, n, flip(old, 5), root, path));
        assert.ok(!verifyConsistency(m, n, old, flip(root, 5), path));
        for (let j = 0; j < path.length; j++) {
          const bad = [...path];
          bad[j] = flip(bad[j] as string, 33);
          assert.ok(!verifyConsistency(m, n, old, root, bad), `path[${j}] m=${m} n=${n}`);
        }
        if (m < n) {
          // A different older tree (one entry changed) has no proof from it.
          const other = entries.slice(0, n);
          other[m - 1] = flip(other[m - 1] as string);
          const otherOld = merkleRoot(other.slice(0, m).map((e) => Buffer.from(e, 'hex'))).toString('hex');
          assert.ok(!verifyConsistency(m, n, otherOld, root, path));
        }
      }
    }
  });

  it('a store\'s proofs verify offline with the public key; each altered byte of the proof file fails', async (t) => {
    const ts = await makeSqlite(t);
    if (ts === undefined) return;
    const signer = testSigner();
    try {
      const { records, checkpoints } = buildChain(S, 37, K, signer, [16, 37]);
      await ts.store.append(v1StoreRecords(records), checkpoints);
      const inc = await proveInclusion(storeProofSource(ts.store), S, 11, null);
      assert.equal(inc.checkpoint.seq, 37);
      assert.deepEqual(verifyProof(inc, signer.publicKey), []);
      const con = await proveConsistency(storeProofSource(ts.store), S, 16, null);
      assert.deepEqual(verifyProof(con, signer.publicKey), []);
      assert.deepEqual(verifyProof(con, signer.publicKey, checkpoints[0]?.checkpoint ?? null), []);
      // Every byte of each proof file's text, changed: the proof fails or is not a proof.
      for (const proof of [inc, con]) assert.ok(everyByteFails(proof, signer.publicKey) > 500);
    } finally {
      await ts.cleanup();
    }
  });

  it('an auditor holding only an old checkpoint detects a rewritten history', async (t) => {
    const ts = await makeSqlite(t);
    if (ts === undefined) return;
    const signer = testSigner();
    try {
      const { records, checkpoints } = buildChain(S, 20, K, signer, [10, 20]);
      const held = (checkpoints[0] as StoredCheckpoint).checkpoint; // the auditor kept seq 10
      await ts.store.append(v1StoreRecords(records), checkpoints);
      // The operator (HMAC key and checkpoint key in hand) rewrites record 5 and everything
      // after it, re-signing both checkpoints: a self-consistent, fully verifying store.
      const chain = new Chain(S, 0, genesis(S).toString('hex'), new MerkleAccumulator());
      const forged: ChainedRecord[] = [];
      const cps: StoredCheckpoint[] = [];
      for (const r of records) {
        const body = { ...r, path: r.seq === 5 ? '/nothing-to-see' : r.path };
        forged.push(chain.seal(body, r.seq, K));
        if (r.seq === 10 || r.seq === 20) cps.push({ checkpoint: signer.sign({ stream: S, seq: r.seq, head_hash: chain.prev, merkle_root: chain.merkle.rootHex(), time: new Date().toISOString() }), frontier: chain.merkle.state() });
      }
      for (const r of forged) await ts.tamper.setData(S, r.seq, JSON.stringify(r));
      for (const c of cps) await ts.tamper.setCheckpointData(S, c.checkpoint.seq, JSON.stringify(c.checkpoint));
      // The store's own checkpoints prove consistency among themselves...
      assert.deepEqual(verifyProof(await proveConsistency(storeProofSource(ts.store), S, 10, null), signer.publicKey), []);
      // ...but not from the one the auditor holds, whichever way the proof is asked for.
      const fromHeld = await proveConsistency(storeProofSource(ts.store), S, held, null);
      const problems = verifyProof(fromHeld, signer.publicKey, held);
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.match(problems[0] as string, /does not extend the one at seq 10: the history up to seq 10 was rewritten/);
      const viaStore = verifyProof(await proveConsistency(storeProofSource(ts.store), S, 10, null), signer.publicKey, held);
      assert.match(viaStore.join('\n'), /not the one held/);
    } finally {
      await ts.cleanup();
    }
  });
});

/** The records and checkpoints of a built chain as a proof source (as a store or an archive yields them). */
function memSource(c: MixedChain): ProofSource {
  return {
    checkpoints: async () => c.checkpoints.map((x) => x.checkpoint),
    async *records() {
      for (const r of c.records) yield r.data;
    },
  };
}

describe('proofs over chain format v2 and a stream that switched from v1 to v2', () => {
  const signer = testSigner();
  // Records 1..10 in v1, then batches 11..13, 14..17, 18..26, 27..27, 28..40 in v2.
  const batches = [3, 4, 9, 1, 13];
  const cpAt = [4, 10, 13, 26, 27, 40];
  const mixed = buildMixedChain(S, 10, batches, K, signer, cpAt);
  const allV2 = buildMixedChain(S, 0, [5, 8, 1, 16], K, signer, [5, 13, 14, 30]);

  it('the checkpoints\' roots are the MTH over the leaves: H(0x00 ‖ hash) for v1, H(0x00 ‖ canonical) for v2', () => {
    for (const c of [mixed, allV2]) {
      for (const { checkpoint: cp } of c.checkpoints) {
        const ls = c.records.filter((r) => r.seq <= cp.seq).map((r) => r.leaf);
        // A tree of one leaf has that leaf as its root.
        if (ls.length === 1) assert.equal(cp.merkle_root, ls[0]);
        const path = inclusionPath(ls, ls.length - 1);
        assert.ok(verifyInclusion(ls[ls.length - 1] as string, ls.length - 1, ls.length, path, cp.merkle_root), `root at ${cp.seq}`);
      }
      // v1 leaves are the old definition: the same tree as before v2 existed.
      for (const r of c.records.filter((x) => x.v === 1)) assert.equal(r.leaf, leafHex(r.hash));
    }
  });

  it('every record proves against every checkpoint that covers it; the head check uses the seal', async () => {
    for (const c of [mixed, allV2]) {
      for (const { checkpoint: cp } of c.checkpoints) {
        for (const r of c.records.filter((x) => x.seq <= cp.seq)) {
          const p = await proveInclusion(memSource(c), S, r.seq, cp.seq);
          assert.deepEqual(verifyProof(p, signer.publicKey), [], `record ${r.seq} under the checkpoint at ${cp.seq}`);
          assert.equal(p.tree_size, cp.seq);
          assert.equal(p.leaf_index, r.seq - 1);
          const rec = p.record as unknown as Record<string, unknown>;
          if (r.v === 2) {
            // The seal rides along only where the proof checks it: as the checkpoint's head.
            assert.equal(rec.seal, r.seq === cp.seq ? r.chain : undefined);
            assert.equal(rec.seal_first, undefined);
            assert.equal(rec.leaf, r.leaf);
          } else assert.equal(rec.hash, r.hash);
        }
      }
    }
  });

  it('every pair of checkpoints is consistent, across the switch from v1 to v2', async () => {
    for (const c of [mixed, allV2]) {
      const cps = c.checkpoints.map((x) => x.checkpoint);
      for (const a of cps) {
        for (const b of cps.filter((x) => x.seq >= a.seq)) {
          const p = await proveConsistency(memSource(c), S, a.seq, b.seq);
          assert.deepEqual(verifyProof(p, signer.publicKey, a), [], `${a.seq} → ${b.seq}`);
        }
      }
    }
  });

  it('each altered byte of a v2 proof fails: a record inside a batch, a batch\'s last record at the checkpoint, a v1 record under a v2 checkpoint, consistency across the switch', async () => {
    const src = memSource(mixed);
    const proofs = [
      await proveInclusion(src, S, 15, 26), // inside a v2 batch
      await proveInclusion(src, S, 26, 26), // the checkpoint's head: carries its seal
      await proveInclusion(src, S, 27, 27), // a one-record batch at a checkpoint
      await proveInclusion(src, S, 7, 40), // v1 record, v2 checkpoint
      await proveConsistency(src, S, 10, 40), // last v1 checkpoint → v2
      await proveConsistency(src, S, 4, 13),
    ];
    for (const p of proofs) {
      assert.deepEqual(verifyProof(p, signer.publicKey), []);
      assert.ok(everyByteFails(p, signer.publicKey) > 300);
    }
  });

  it('a v2 record\'s proof carries only what it checks: its content is its leaf, a seal only as the head', async () => {
    const src = memSource(mixed);
    const inside = await proveInclusion(src, S, 15, 26);
    const head = await proveInclusion(src, S, 26, 26);
    const pub = signer.publicKey;
    const withRecord = (p: typeof inside, change: (r: Record<string, unknown>) => void) => {
      const copy = JSON.parse(JSON.stringify(p)) as typeof inside;
      change(copy.record as unknown as Record<string, unknown>);
      return verifyProof(copy, pub);
    };
    assert.match(withRecord(inside, (r) => (r.path = '/elsewhere')).join('\n'), /record 15: its content does not match its leaf/);
    // The stored leaf replaced by the one of the changed content: the path no longer leads to the root.
    assert.match(withRecord(inside, (r) => {
      r.path = '/elsewhere';
      r.leaf = new LeafHasher().leaf(canonical(r as unknown as ChainedRecord));
    }).join('\n'), /not in the tree under the checkpoint at seq 26/);
    assert.match(withRecord(inside, (r) => (r.seal = mixed.head)).join('\n'), /carries a seal, which a proof covers only at the checkpoint's seq 26/);
    assert.match(withRecord(inside, (r) => (r.seal_first = 18)).join('\n'), /members the proof does not cover: seal_first/);
    assert.match(withRecord(head, (r) => delete r.seal).join('\n'), /record 26 is not the checkpoint's head: its seal/);
    assert.match(withRecord(head, (r) => (r.seal = (mixed.records[12] as { chain: string }).chain)).join('\n'), /record 26 is not the checkpoint's head/);
    // A v2 record presented as v1 (or the reverse) has no chain fields of that format.
    assert.match(withRecord(inside, (r) => (r.v = 1)).join('\n'), /lacks its chain fields/);
  });

  it('an auditor holding a checkpoint detects a rewritten v2 record, even with every checkpoint re-signed', async () => {
    const held = (mixed.checkpoints.find((c) => c.checkpoint.seq === 26) as StoredCheckpoint).checkpoint;
    // The operator, with the HMAC key and the checkpoint key, rewrites record 20 (inside a
    // v2 batch) and re-seals and re-signs everything: a self-consistent stream.
    const forged = buildMixedChain(S, 10, batches, K, signer, cpAt, (seq, b) => {
      if (seq === 20) b.path = '/nothing-to-see';
    });
    const f = memSource(forged);
    assert.deepEqual(verifyProof(await proveConsistency(f, S, 26, 40), signer.publicKey), []);
    assert.deepEqual(verifyProof(await proveInclusion(f, S, 20, 40), signer.publicKey), []);
    const problems = verifyProof(await proveConsistency(f, S, held, 40), signer.publicKey, held);
    assert.match(problems.join('\n'), /does not extend the one at seq 26: the history up to seq 26 was rewritten/);
    // A rewrite after the held checkpoint leaves it consistent.
    const later = buildMixedChain(S, 10, batches, K, signer, cpAt, (seq, b) => {
      if (seq === 30) b.path = '/later';
    });
    assert.deepEqual(verifyProof(await proveConsistency(memSource(later), S, held, 40), signer.publicKey, held), []);
  });

  it('a store the writer continued in v2 after a v1 writer: every record proves against every checkpoint, every pair of checkpoints is consistent', async (t) => {
    const ts = await makeSqlite(t);
    if (ts === undefined) return;
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-proof-w-'));
    const stream = 'gw-proof-w';
    try {
      const { records, checkpoints } = buildChain(stream, 12, K, signer, [5, 12]);
      await ts.store.append(v1StoreRecords(records), checkpoints);
      saveStreamState(dir, { stream, reserved: 12 });
      const w = await AuditWriter.open({ store: ts.store, keyring: K, signer, stateDir: dir, stream, instance: 'test', mode: 'async', flushIntervalMs: 5, batchMax: 7, checkpointRecords: 9, checkpointIntervalMs: 0, spoolLimitBytes: 1 << 20, retryMs: 0 });
      for (let i = 0; i < 40; i++) {
        void w.append(testBody(i));
        if (i % 6 === 5) await w.flush();
      }
      await w.close();
      const rows = (await ts.store.readRaw(stream, 0, 1000)).map((r) => r.data);
      assert.ok(rows.filter((d) => isStoredV2(d)).length >= 40, 'the writer wrote v2');
      const src = storeProofSource(ts.store);
      const cps = (await ts.store.checkpoints(stream)).sort((a, b) => a.seq - b.seq);
      assert.ok(cps.length >= 5 && (cps[1] as { seq: number }).seq === 12);
      for (const cp of cps) {
        for (let seq = 1; seq <= cp.seq; seq++) assert.deepEqual(verifyProof(await proveInclusion(src, stream, seq, cp.seq), signer.publicKey), [], `record ${seq} under the checkpoint at ${cp.seq}`);
        for (const b of cps.filter((x) => x.seq >= cp.seq)) assert.deepEqual(verifyProof(await proveConsistency(src, stream, cp, b.seq), signer.publicKey, cp), [], `${cp.seq} → ${b.seq}`);
      }
    } finally {
      await ts.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
