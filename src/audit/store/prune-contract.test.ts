/**
 * Archive anchors and pruning, one contract for both stores: records go only after an
 * anchor says they were archived, the append-only protection stays for everything else,
 * a pruned stream still verifies (from its anchor) and still catches tampering, and a
 * stream pruned to its head continues from the anchor — never a new genesis.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { v1StoreRecords } from '../chain.js';
import { verifyStore } from '../sources.js';
import { buildV2Batch } from '../test-v2.js';
import { buildChain, HMAC_K1, keyring, makePostgres, makeSqlite, testSigner, type MakeStore, type TestStore } from '../test-support.js';
import type { ChainedRecord } from '../record.js';
import type { ArchiveAnchor, StoredCheckpoint } from './types.js';
import type { StreamReport } from '../verify.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-prune';

function anchorAt(records: ChainedRecord[], cp: StoredCheckpoint, rowId: number, index: number): ArchiveAnchor {
  const seq = cp.checkpoint.seq;
  return {
    stream: S,
    seq,
    hash: (records[seq - 1] as ChainedRecord).hash,
    frontier: cp.frontier,
    checkpoint: cp.checkpoint,
    segment: { index, first_seq: 1, records: seq, manifest_key: `${S}/m`, manifest_sha256: '0'.repeat(64), data_key: `${S}/d`, data_sha256: '0'.repeat(64) },
    location: 'test',
    archived_at: new Date().toISOString(),
    row_id: rowId,
  };
}

function contract(name: string, make: MakeStore): void {
  describe(`audit store archive/prune contract: ${name}`, () => {
    const check = (title: string, fn: (ts: TestStore) => Promise<void>) =>
      it(title, async (t) => {
        const ts = await make(t);
        if (ts === undefined) return;
        try {
          await fn(ts);
        } finally {
          await ts.cleanup();
        }
      });
    const signer = testSigner();
    const seed = async (ts: TestStore) => {
      const { records, checkpoints } = buildChain(S, 30, K, signer, [10, 20, 30]);
      await ts.store.append(v1StoreRecords(records), checkpoints);
      const rows = await ts.store.readRaw(S, 0, 100);
      const rowOf = (seq: number) => (rows[seq - 1] as { id: number }).id;
      return { records, checkpoints, rowOf };
    };
    const verify = async (ts: TestStore): Promise<StreamReport> => {
      const reps = await verifyStore(ts.store, { keyring: K, publicKey: signer.publicKey });
      assert.equal(reps.length, 1);
      return reps[0] as StreamReport;
    };

    check('anchors are kept in seq order; prune refuses a seq without an anchor and deletes nothing', async (ts) => {
      const { records, checkpoints, rowOf } = await seed(ts);
      await assert.rejects(ts.store.prune(S, 10), /no archive anchor/);
      const a10 = anchorAt(records, checkpoints[0] as StoredCheckpoint, rowOf(10), 0);
      const a20 = anchorAt(records, checkpoints[1] as StoredCheckpoint, rowOf(20), 1);
      await ts.store.addArchiveAnchor(a10);
      await ts.store.addArchiveAnchor(a20);
      assert.deepEqual((await ts.store.archiveAnchors(S)).map((a) => [a.seq, a.hash, a.row_id]), [
        [10, a10.hash, a10.row_id],
        [20, a20.hash, a20.row_id],
      ]);
      await assert.rejects(ts.store.prune(S, 15), /no archive anchor/);
      assert.equal((await ts.store.readRaw(S, 0, 100)).length, 30);
      assert.equal(await ts.store.prunedTo(S), null);
    });

    check('prune deletes the records up to the anchor and the checkpoints before it; the stream still verifies, from the anchor', async (ts) => {
      const { records, checkpoints, rowOf } = await seed(ts);
      await ts.store.addArchiveAnchor(anchorAt(records, checkpoints[1] as StoredCheckpoint, rowOf(20), 1));
      assert.equal(await ts.store.prune(S, 20), 20);
      const left = (await ts.store.readRaw(S, 0, 100)).map((r) => (JSON.parse(r.data) as ChainedRecord).seq);
      assert.deepEqual(left, Array.from({ length: 10 }, (_, i) => 21 + i));
      assert.deepEqual((await ts.store.checkpoints(S)).map((c) => c.seq), [20, 30]);
      assert.equal((await ts.store.prunedTo(S))?.seq, 20);
      const rep = await verify(ts);
      assert.deepEqual(rep.problems, []);
      assert.equal(rep.records, 10);
      assert.equal(rep.lastSeq, 30);
      // Already pruned that far: nothing more.
      assert.equal(await ts.store.prune(S, 20), 0);
    });

    check('after a prune, tampering with what remains is still named (modified, deleted)', async (ts) => {
      const { records, checkpoints, rowOf } = await seed(ts);
      await ts.store.addArchiveAnchor(anchorAt(records, checkpoints[0] as StoredCheckpoint, rowOf(10), 0));
      await ts.store.prune(S, 10);
      const d = await ts.tamper.getData(S, 11);
      await ts.tamper.setData(S, 11, d.replace('"GET"', '"PUT"'));
      let rep = await verify(ts);
      assert.equal(rep.problems[0]?.seq, 11);
      assert.equal(rep.problems[0]?.kind, 'modified');
      await ts.tamper.setData(S, 11, d);
      await ts.tamper.deleteSeqs(S, 12, 12);
      rep = await verify(ts);
      assert.deepEqual([rep.problems[0]?.seq, rep.problems[0]?.kind], [12, 'deleted']);
    });

    check('the checkpoint that vouches for the anchor is checked: a forged one is named at the anchor', async (ts) => {
      const { records, checkpoints, rowOf } = await seed(ts);
      await ts.store.addArchiveAnchor(anchorAt(records, checkpoints[0] as StoredCheckpoint, rowOf(10), 0));
      await ts.store.prune(S, 10);
      const cp = { ...(checkpoints[0] as StoredCheckpoint).checkpoint, head_hash: 'a'.repeat(64) };
      await ts.tamper.setCheckpointData(S, 10, JSON.stringify(cp));
      const rep = await verify(ts);
      assert.equal(rep.problems[0]?.seq, 10);
      assert.ok(['bad_checkpoint_signature', 'modified'].includes(rep.problems[0]?.kind ?? ''), JSON.stringify(rep.problems));
      assert.ok(rep.problems.some((p) => p.seq === 10 && p.kind === 'modified' && /no \(valid\) signed checkpoint/.test(p.detail)), JSON.stringify(rep.problems));
    });

    check('a record at or before the anchor reinserted after the prune is "inserted"', async (ts) => {
      const { records, checkpoints, rowOf } = await seed(ts);
      await ts.store.addArchiveAnchor(anchorAt(records, checkpoints[0] as StoredCheckpoint, rowOf(10), 0));
      await ts.store.prune(S, 10);
      await ts.tamper.insertRaw(records[4] as ChainedRecord);
      const rep = await verify(ts);
      assert.ok(rep.problems.some((p) => p.seq === 5 && p.kind === 'inserted'), JSON.stringify(rep.problems));
    });

    check('an anchor whose hash is not the stored record is refused (nothing deleted)', async (ts) => {
      const { records, checkpoints, rowOf } = await seed(ts);
      const bad = { ...anchorAt(records, checkpoints[0] as StoredCheckpoint, rowOf(10), 0), hash: 'f'.repeat(64) };
      await ts.store.addArchiveAnchor(bad);
      await assert.rejects(ts.store.prune(S, 10), /does not match the stored record/);
      assert.equal((await ts.store.readRaw(S, 0, 100)).length, 30);
    });

    check('outside a recorded prune, DELETE stays refused (records and checkpoints after the anchor, anchors, prunes)', async (ts) => {
      const { records, checkpoints, rowOf } = await seed(ts);
      await ts.store.addArchiveAnchor(anchorAt(records, checkpoints[0] as StoredCheckpoint, rowOf(10), 0));
      await ts.store.prune(S, 10);
      await assert.rejects(ts.tamper.plain('delete'), /append-only/);
      assert.equal((await ts.store.readRaw(S, 0, 100)).length, 20);
    });

    check('a v2 stream prunes at a batch end anchored on its seal; an anchor inside a batch or naming the leaf is refused', async (ts) => {
      const { records, checkpoints } = buildChain(S, 10, K, testSigner(), [10]);
      await ts.store.append(v1StoreRecords(records), checkpoints);
      const b1 = buildV2Batch(S, 11, 5, (records[9] as ChainedRecord).hash, K);
      const b2 = buildV2Batch(S, 16, 5, b1.seal, K);
      await ts.store.append(b1.records, []);
      await ts.store.append(b2.records, []);
      const rows = await ts.store.readRaw(S, 0, 100);
      const cp = checkpoints[0] as StoredCheckpoint;
      const at = (seq: number, hash: string): ArchiveAnchor => ({ ...anchorAt(records, cp, (rows[seq - 1] as { id: number }).id, 0), seq, hash });
      await ts.store.addArchiveAnchor(at(13, b1.seal));
      await assert.rejects(ts.store.prune(S, 13), /does not match the stored record/);
      await ts.store.addArchiveAnchor(at(15, b1.leaves[4] as string));
      await assert.rejects(ts.store.prune(S, 15), /does not match the stored record/);
      assert.equal((await ts.store.readRaw(S, 0, 100)).length, 20);
      await ts.store.addArchiveAnchor(at(15, b1.seal));
      assert.equal(await ts.store.prune(S, 15), 15);
      assert.deepEqual(await ts.store.head(S), { seq: 20, hash: b2.seal });
      await ts.store.addArchiveAnchor(at(20, b2.seal));
      assert.equal(await ts.store.prune(S, 20), 5);
      // Every record pruned: the head is the chain value the prune recorded.
      assert.deepEqual(await ts.store.head(S), { seq: 20, hash: b2.seal });
    });

    check('pruned to the head: the head is the anchor, so a restart continues the chain (no new genesis)', async (ts) => {
      const { records, checkpoints, rowOf } = await seed(ts);
      await ts.store.addArchiveAnchor(anchorAt(records, checkpoints[2] as StoredCheckpoint, rowOf(30), 2));
      assert.equal(await ts.store.prune(S, 30), 30);
      assert.deepEqual(await ts.store.head(S), { seq: 30, hash: (records[29] as ChainedRecord).hash });
      assert.deepEqual((await ts.store.streams()), [S]);
      const rep = await verify(ts);
      assert.deepEqual(rep.problems, []);
      assert.equal(rep.lastSeq, 30);
      // The next records continue from the anchor and verify with the rest.
      const last = await ts.store.lastCheckpoint(S);
      assert.equal(last?.checkpoint.seq, 30);
    });
  });
}

contract('sqlite', makeSqlite);
contract('postgres', makePostgres);

describe('audit store: PostgreSQL pruner role', () => {
  it('only <schema>_audit_pruner (or the owner) may prune, through audit_prune(); the writer may record anchors but not prune or delete', async (t) => {
    const ts = await makePostgres(t);
    if (ts === undefined) return;
    const { default: postgres } = await import('postgres');
    const { POSTGRES_URL } = await import('../../testing/services.js');
    const sql = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
    try {
      const schema = ts.schema as string;
      const signer = testSigner();
      const { records, checkpoints } = buildChain(S, 10, K, signer, [10]);
      await ts.store.append(v1StoreRecords(records), checkpoints);
      const rows = await ts.store.readRaw(S, 0, 100);
      const a = anchorAt(records, checkpoints[0] as StoredCheckpoint, (rows[9] as { id: number }).id, 0);
      const as = (role: string, stmt: string, params: unknown[] = []) =>
        sql.begin(async (tx) => {
          await tx.unsafe(`SET LOCAL ROLE ${schema}_${role}`);
          return tx.unsafe(stmt, params as never[]);
        });
      await as('audit_writer', `INSERT INTO ${schema}.audit_archive_anchors (stream, seq, data) VALUES ($1, $2, $3)`, [S, 10, JSON.stringify(a)]);
      await assert.rejects(as('audit_writer', `SELECT ${schema}.audit_prune($1, $2)`, [S, 10]), /permission denied/);
      await assert.rejects(as('audit_writer', `DELETE FROM ${schema}.audit_records`), /permission denied/);
      await assert.rejects(as('audit_writer', `INSERT INTO ${schema}.audit_prunes (stream, seq, hash, time) VALUES ('x', 1, 'h', 't')`), /permission denied/);
      await assert.rejects(as('audit_pruner', `DELETE FROM ${schema}.audit_records`), /permission denied/);
      const n = await as('audit_pruner', `SELECT ${schema}.audit_prune($1, $2) AS n`, [S, 10]);
      assert.equal(Number((n[0] as unknown as { n: string }).n), 10);
      assert.equal((await ts.store.readRaw(S, 0, 100)).length, 0);
    } finally {
      await sql.end({ timeout: 2 });
      await ts.cleanup();
    }
  });
});
