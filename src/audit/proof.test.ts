/**
 * Inclusion and consistency proofs (RFC 9162 §2.1.3–2.1.4) against signed checkpoints:
 * - for every tree size up to 40 and every index / older size, the built proof verifies
 *   against the reference Merkle root, and changing any byte of it (a path hash, the
 *   root, the index, a size) makes it fail;
 * - proofs built from a store verify offline with the public key alone; each altered byte
 *   of the proof file fails; a record whose content was changed fails;
 * - an auditor holding only an old checkpoint detects a rewritten history: the operator
 *   rewrites record 5 with its own keys and re-signs every checkpoint, and no consistency
 *   proof from the held checkpoint verifies.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Chain, v1StoreRecords } from './chain.js';
import { genesis } from './canonical.js';
import { consistencyPath, inclusionPath, merkleRoot, MerkleAccumulator, verifyConsistency, verifyInclusion } from './merkle.js';
import { proveConsistency, proveInclusion, verifyProof } from './proof.js';
import { buildChain, HMAC_K1, keyring, makeSqlite, testSigner } from './test-support.js';
import type { ChainedRecord } from './record.js';
import type { StoredCheckpoint } from './store/types.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-proof';

const entries = Array.from({ length: 40 }, (_, i) => Buffer.alloc(32, i + 1).toString('hex'));
const flip = (hex: string, at = 0) => hex.slice(0, at) + (hex[at] === '0' ? '1' : '0') + hex.slice(at + 1);

describe('RFC 9162 proofs over the checkpoints\' Merkle tree', () => {
  it('inclusion: every index of every size verifies; any altered byte fails', () => {
    for (let n = 1; n <= 40; n++) {
      const list = entries.slice(0, n);
      const root = merkleRoot(list.map((e) => Buffer.from(e, 'hex'))).toString('hex');
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
      const list = entries.slice(0, n);
      const root = merkleRoot(list.map((e) => Buffer.from(e, 'hex'))).toString('hex');
      for (let m = 1; m <= n; m++) {
        const old = merkleRoot(list.slice(0, m).map((e) => Buffer.from(e, 'hex'))).toString('hex');
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
          const other = [...list];
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
      const inc = await proveInclusion(ts.store, S, 11, null);
      assert.equal(inc.checkpoint.seq, 37);
      assert.deepEqual(verifyProof(inc, signer.publicKey), []);
      const con = await proveConsistency(ts.store, S, 16, null);
      assert.deepEqual(verifyProof(con, signer.publicKey), []);
      assert.deepEqual(verifyProof(con, signer.publicKey, checkpoints[0]?.checkpoint ?? null), []);
      // Every byte of each proof file's text, changed (to a character of the same class so
      // that most stay syntactically valid): the proof fails or is not a proof.
      for (const proof of [inc, con]) {
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
          // Members the proof does not rely on: the checkpoint's time is signed, the
          // record's members are hashed; only whitespace-free JSON syntax is left out.
          assert.notDeepEqual(verifyProof(altered, signer.publicKey), [], `byte ${i} (${c} → ${to}) of a ${proof.type} proof`);
          checked++;
        }
        assert.ok(checked > 500, `${checked} bytes altered`);
      }
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
      assert.deepEqual(verifyProof(await proveConsistency(ts.store, S, 10, null), signer.publicKey), []);
      // ...but not from the one the auditor holds, whichever way the proof is asked for.
      const fromHeld = await proveConsistency(ts.store, S, held, null);
      const problems = verifyProof(fromHeld, signer.publicKey, held);
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.match(problems[0] as string, /does not extend the one at seq 10: the history up to seq 10 was rewritten/);
      const viaStore = verifyProof(await proveConsistency(ts.store, S, 10, null), signer.publicKey, held);
      assert.match(viaStore.join('\n'), /not the one held/);
    } finally {
      await ts.cleanup();
    }
  });
});
