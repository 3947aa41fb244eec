/**
 * One contract, two stores (SQLite and PostgreSQL): appends and reads, append-only in the
 * database itself, and the tamper matrix — every kind of tampering is named by the
 * verifier with the first bad seq.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { genesis } from '../canonical.js';
import { leafHex } from '../chain-hash.js';
import { Chain, v1StoreRecords } from '../chain.js';
import { MerkleAccumulator } from '../merkle.js';
import { verifyStore } from '../sources.js';
import { buildV2Batch } from '../test-v2.js';
import { buildChain, HMAC_K1, HMAC_K2, keyring, makePostgres, makeSqlite, testSigner, type MakeStore, type TestStore } from '../test-support.js';
import { emptyBody, type ChainedRecord } from '../record.js';
import type { StreamReport } from '../verify.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-contract';

function contract(name: string, make: MakeStore): void {
  describe(`audit store contract: ${name}`, () => {
    const check = (title: string, fn: (ts: TestStore) => Promise<void>) =>
      it(title, async (t) => {
        const ts = await make(t);
        if (ts === undefined) return; // skipped outside CI
        try {
          await fn(ts);
        } finally {
          await ts.cleanup();
        }
      });

    const signer = testSigner();
    const seed = async (ts: TestStore) => {
      const { records, checkpoints } = buildChain(S, 20, K, signer, [10, 20]);
      await ts.store.append(v1StoreRecords(records.slice(0, 10)), checkpoints.slice(0, 1));
      await ts.store.append(v1StoreRecords(records.slice(10)), checkpoints.slice(1));
      return records;
    };
    const verify = async (ts: TestStore, keys = K): Promise<StreamReport> => {
      const reps = await verifyStore(ts.store, { keyring: keys, publicKey: signer.publicKey });
      assert.equal(reps.length, 1);
      return reps[0] as StreamReport;
    };
    const first = (r: StreamReport) => {
      assert.ok(r.problems.length > 0, 'a problem is reported');
      return r.problems[0] as { seq: number; kind: string };
    };

    check('a subject that is not well-formed UTF-16 (a lone surrogate from a token) is stored and verifies, never wedging the batch', async (ts) => {
      // Sealed with it, as the writer does for a `sub` claim holding "\ud800".
      const chain = new Chain(S, 0, genesis(S).toString('hex'), new MerkleAccumulator());
      const records = ['alice', 'agent \ud800 x', null].map((subject, i) => {
        const b = emptyBody('exchange', new Date(1_700_000_000_000 + i).toISOString());
        b.subject = subject;
        b.decision = 'allowed';
        return chain.seal(b, i + 1, K);
      });
      const checkpoints = [{ checkpoint: signer.sign({ stream: S, seq: 3, head_hash: chain.prev, merkle_root: chain.merkle.rootHex(), time: new Date().toISOString() }), frontier: chain.merkle.state() }];
      await ts.store.append(v1StoreRecords(records), checkpoints);
      assert.equal((await ts.store.head(S))?.seq, 3);
      assert.deepEqual((await verify(ts)).problems, []);
      assert.deepEqual((await ts.store.query({ subject: 'alice', limit: 10 })).map((r) => r.seq), [1]);
      assert.equal((await ts.store.query({ limit: 10 })).find((r) => r.seq === 2)?.subject, 'agent \ud800 x');
    });

    check('v2 batches continuing a v1 stream: head is the last seal, leavesAfter gives v1 and v2 leaves, the columns come from the stored form', async (ts) => {
      const { records } = buildChain(S, 10, K, signer, []);
      await ts.store.append(v1StoreRecords(records), []);
      const b1 = buildV2Batch(S, 11, 5, (records[9] as ChainedRecord).hash, K);
      const b2 = buildV2Batch(S, 16, 3, b1.seal, K);
      await ts.store.append(b1.records, []);
      assert.deepEqual(await ts.store.head(S), { seq: 15, hash: b1.seal });
      await ts.store.append(b2.records, []);
      assert.deepEqual(await ts.store.head(S), { seq: 18, hash: b2.seal });
      assert.deepEqual(await ts.store.leavesAfter(S, 8), [...records.slice(8).map((r) => leafHex(r.hash)), ...b1.leaves, ...b2.leaves]);
      assert.deepEqual(await ts.store.leavesAfter(S, 15), b2.leaves);
      // Stored byte for byte, in order.
      const rows = await ts.store.readRaw(S, 0, 100);
      assert.deepEqual(rows.slice(10).map((r) => r.data), [...b1.data, ...b2.data]);
      // The indexed columns were read out of the v2 stored form.
      assert.deepEqual((await ts.store.query({ subject: 'alice', from: new Date(1_700_000_011_000).toISOString(), limit: 100 })).map((r) => r.seq), [12, 14, 16, 18]);
      assert.deepEqual((await ts.store.query({ decision: 'refused', from: new Date(1_700_000_011_000).toISOString(), limit: 100 })).map((r) => r.seq), [12, 15, 18]);
    });

    check('a page read ahead is not served after an append: a reader sees its own writes', async (ts) => {
      const { records } = buildChain(S, 10, K, signer, []);
      await ts.store.append(v1StoreRecords(records.slice(0, 7)), []);
      const page = await ts.store.readRaw(S, 0, 5);
      assert.equal(page.length, 5);
      // The page after it (2 rows then) may have been read ahead by now.
      await ts.store.head(S);
      await ts.store.append(v1StoreRecords(records.slice(7)), []);
      const next = await ts.store.readRaw(S, (page[4] as { id: number }).id, 5);
      assert.deepEqual(next.map((r) => (JSON.parse(r.data) as ChainedRecord).seq), [6, 7, 8, 9, 10]);
      // And with nothing appended in between, the page read ahead is the right one.
      const last = await ts.store.readRaw(S, (next[4] as { id: number }).id, 5);
      assert.deepEqual(last, []);
      const all = await ts.store.readRaw(S, 0, 5);
      const rest = await ts.store.readRaw(S, (all[4] as { id: number }).id, 5);
      assert.deepEqual(rest.map((r) => (JSON.parse(r.data) as ChainedRecord).seq), [6, 7, 8, 9, 10]);
    });

    check('appends, reads back in order, knows the head, the last checkpoint and the Merkle frontier', async (ts) => {
      const records = await seed(ts);
      const head = await ts.store.head(S);
      assert.deepEqual(head, { seq: 20, hash: (records[19] as ChainedRecord).hash });
      const cp = await ts.store.lastCheckpoint(S);
      assert.equal(cp?.checkpoint.seq, 20);
      assert.equal(MerkleAccumulator.from(cp!.frontier).rootHex(), cp!.checkpoint.merkle_root);
      assert.deepEqual(await ts.store.leavesAfter(S, 15), records.slice(15).map((r) => leafHex(r.hash)));
      assert.deepEqual(await ts.store.streams(), [S]);
      const rep = await verify(ts);
      assert.deepEqual(rep.problems, []);
      assert.equal(rep.records, 20);
      assert.equal(rep.latestCheckpointSeq, 20);
      assert.equal(await ts.store.head('other'), null);
    });

    check('queries by time range, subject and decision', async (ts) => {
      await seed(ts);
      const all = await ts.store.query({ limit: 100 });
      assert.equal(all.length, 20);
      const alice = await ts.store.query({ subject: 'alice', limit: 100 });
      assert.equal(alice.length, 10);
      assert.ok(alice.every((r) => r.subject === 'alice'));
      const refused = await ts.store.query({ decision: 'refused', limit: 100 });
      assert.deepEqual(refused.map((r) => r.seq), [3, 6, 9, 12, 15, 18]);
      const range = await ts.store.query({ from: new Date(1_700_000_005_000).toISOString(), to: new Date(1_700_000_008_000).toISOString(), limit: 100 });
      assert.deepEqual(range.map((r) => r.seq), [5, 6, 7]);
      assert.equal((await ts.store.query({ limit: 2 })).length, 2);
    });

    check('the database itself refuses UPDATE and DELETE (and TRUNCATE in PostgreSQL)', async (ts) => {
      await seed(ts);
      // Through a separate connection, as any client of the database would.
      for (const op of ['update', 'delete', 'truncate'] as const) await assert.rejects(ts.tamper.plain(op), /append-only/, op);
      assert.deepEqual((await verify(ts)).problems, []);
    });

    check('tamper: a modified record is named (seq and "modified")', async (ts) => {
      await seed(ts);
      const r = JSON.parse(await ts.tamper.getData(S, 5)) as ChainedRecord;
      r.path = '/somewhere/else';
      await ts.tamper.setData(S, 5, JSON.stringify(r));
      const p = first(await verify(ts));
      assert.equal(p.kind, 'modified');
      assert.equal(p.seq, 5);
    });

    check('tamper: an inserted record (a second seq 7) is named', async (ts) => {
      await seed(ts);
      const r = JSON.parse(await ts.tamper.getData(S, 7)) as ChainedRecord;
      r.path = '/forged';
      await ts.tamper.insertRaw(r);
      const p = first(await verify(ts));
      assert.equal(p.kind, 'inserted');
      assert.equal(p.seq, 7);
    });

    check('tamper: a deleted record is named', async (ts) => {
      await seed(ts);
      await ts.tamper.deleteSeqs(S, 8, 8);
      const p = first(await verify(ts));
      assert.equal(p.kind, 'deleted');
      assert.equal(p.seq, 8);
    });

    check('tamper: reordered records are named', async (ts) => {
      await seed(ts);
      const a = await ts.tamper.getData(S, 12);
      const b = await ts.tamper.getData(S, 13);
      await ts.tamper.setData(S, 12, b);
      // The row that held 12 now holds 13: the first row with seq 13 is the original 13's row.
      await ts.tamper.setData(S, 13, a);
      const rep = await verify(ts);
      const p = first(rep);
      assert.equal(p.kind, 'reordered');
      assert.equal(p.seq, 12);
    });

    check('tamper: deleting the newest records is named as truncation (up to the latest checkpoint)', async (ts) => {
      await seed(ts);
      await ts.tamper.deleteSeqs(S, 16, 20);
      const p = first(await verify(ts));
      assert.equal(p.kind, 'truncated');
      assert.equal(p.seq, 16);
    });

    check('tamper: records re-made with a key not in the ring are named "wrong_key"', async (ts) => {
      const records = await seed(ts);
      // A forger without k1 rewrites the tail from seq 15 with its own key, claiming kid k1.
      const r14 = records[13] as ChainedRecord;
      const forged = keyring({ k1: Buffer.alloc(32, 9) }, 'k1');
      const m = new MerkleAccumulator();
      for (const r of records.slice(0, 14)) m.push(Buffer.from(r.hash, 'hex'));
      const tail = buildChain(S, 20, forged, testSigner(), [], { seq: 14, prev: r14.hash, merkle: m });
      for (const r of tail.records) await ts.tamper.setData(S, r.seq, JSON.stringify(r));
      const rep = await verify(ts);
      const p = first(rep);
      assert.equal(p.kind, 'wrong_key');
      assert.equal(p.seq, 15);
    });

    check('tamper: a record signed with a retired key id not in the ring is "wrong_key"', async (ts) => {
      await seed(ts);
      const rep = await verify(ts, keyring({ k2: HMAC_K2 }, 'k2'));
      const p = first(rep);
      assert.equal(p.kind, 'wrong_key');
      assert.equal(p.seq, 1);
    });

    check('tamper: a checkpoint with a bad signature is named', async (ts) => {
      await seed(ts);
      const cps = await ts.store.checkpoints(S);
      const c = { ...(cps[0] as object), merkle_root: '00'.repeat(32) };
      await ts.tamper.setCheckpointData(S, 10, JSON.stringify(c));
      const p = first(await verify(ts));
      assert.equal(p.kind, 'bad_checkpoint_signature');
      assert.equal(p.seq, 10);
    });

    check('third party (public key only): a rewritten record with a recomputed hash is caught by the next link and the checkpoint', async (ts) => {
      const records = await seed(ts);
      const r = { ...(records[4] as ChainedRecord), status: 500 };
      const { canonical, recordHash } = await import('../canonical.js');
      r.hash = recordHash(Buffer.from(r.prev_hash, 'hex'), canonical(r), Buffer.from(r.mac, 'hex')).toString('hex');
      await ts.tamper.setData(S, 5, JSON.stringify(r));
      const reps = await verifyStore(ts.store, { publicKey: signer.publicKey });
      const p = first(reps[0] as StreamReport);
      assert.equal(p.kind, 'modified');
      assert.equal(p.seq, 5);
    });
  });
}

contract('sqlite', makeSqlite);
contract('postgres', makePostgres);

describe('audit store: PostgreSQL writer role', () => {
  it('the <schema>_audit_writer role may insert and read, but not update, delete, truncate or switch the triggers off', async (t) => {
    const ts = await makePostgres(t);
    if (ts === undefined) return;
    const { default: postgres } = await import('postgres');
    const { POSTGRES_URL } = await import('../../testing/services.js');
    const sql = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
    try {
      const schema = ts.schema as string;
      const { records } = buildChain(S, 2, K, testSigner(), []);
      await ts.store.append(v1StoreRecords(records), []);
      const asWriter = (stmt: string) =>
        sql.begin(async (tx) => {
          await tx.unsafe(`SET LOCAL ROLE ${schema}_audit_writer`);
          return tx.unsafe(stmt);
        });
      const n = await asWriter(`SELECT count(*)::int AS n FROM ${schema}.audit_records`);
      assert.equal((n[0] as unknown as { n: number }).n, 2);
      await assert.rejects(asWriter(`ALTER TABLE ${schema}.audit_records DISABLE TRIGGER USER`), /must be owner/);
      await assert.rejects(asWriter(`UPDATE ${schema}.audit_records SET data = '{}'`), /permission denied|append-only/);
      await assert.rejects(asWriter(`DELETE FROM ${schema}.audit_records`), /permission denied|append-only/);
      await assert.rejects(asWriter(`TRUNCATE ${schema}.audit_records`), /permission denied|append-only/);
      await asWriter(`INSERT INTO ${schema}.audit_records (stream, seq, time, hash, data) VALUES ('x', 1, 't', 'h', '{}')`);
    } finally {
      await sql.end({ timeout: 2 });
      await ts.cleanup();
    }
  });
});

describe('audit store: large batches', () => {
  for (const [name, make] of [['sqlite', makeSqlite], ['postgres', makePostgres]] as const) {
    it(`${name}: a batch larger than one multi-row statement keeps storage order = seq order and verifies`, async (t) => {
      const ts = await make(t);
      if (ts === undefined) return;
      try {
        const signer = testSigner();
        const { records, checkpoints } = buildChain(S, 300, K, signer, [300]);
        await ts.store.append(v1StoreRecords(records), checkpoints);
        const rows = await ts.store.readRaw(S, 0, 1000);
        assert.deepEqual(
          rows.map((r) => (JSON.parse(r.data) as ChainedRecord).seq),
          Array.from({ length: 300 }, (_, i) => i + 1),
        );
        const reps = await verifyStore(ts.store, { keyring: K, publicKey: signer.publicKey });
        assert.deepEqual(reps[0]?.problems, []);
      } finally {
        await ts.cleanup();
      }
    });
  }
});
