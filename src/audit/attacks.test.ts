/**
 * Issue #16's defects, each as the attack of an auditor who does not trust the operator,
 * on both stores (SQLite, PostgreSQL) and on an export of each:
 *
 * - a checkpointed tail deleted and a `restart` record (MACed with the operator's key)
 *   declaring it lost in a crash is `truncated`, never a crash `gap`; a real crash's
 *   declared range (no checkpoint covers it) still is a `gap`;
 * - a wiped store (no records, checkpoints left or not) fails when the stream should exist;
 * - a stream whose writer reserved seqs and is gone (an async crash not yet declared) is a
 *   `gap` found by verification itself;
 * - an export line that is not JSON is `malformed` with its line, and the other streams
 *   are still verified.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Chain, v1StoreRecords } from './chain.js';
import { MerkleAccumulator } from './merkle.js';
import { emptyBody, type ChainedRecord } from './record.js';
import { exportStore, verifyExport, verifyStore, type KnownStreams } from './sources.js';
import { buildChain, HMAC_K1, keyring, makePostgres, makeSqlite, testSigner, type MakeStore, type TestStore } from './test-support.js';
import type { StreamReport } from './verify.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-attack';
const signer = testSigner();

/** The operator's forged restart record at `seq`, continuing from record `after`, declaring `after+1..seq-1` lost. */
function forgedRestart(records: readonly ChainedRecord[], after: number, seq: number): ChainedRecord {
  const m = new MerkleAccumulator();
  for (const r of records.slice(0, after)) m.push(r.hash);
  const chain = new Chain(S, after, (records[after - 1] as ChainedRecord).hash, m);
  const b = emptyBody('restart', new Date(1_700_000_100_000).toISOString());
  b.count = seq - after - 1;
  b.lost_to = seq - 1;
  return chain.seal(b, seq, K);
}

function attacks(name: string, make: MakeStore): void {
  describe(`audit attacks: ${name}`, () => {
    const check = (title: string, fn: (ts: TestStore, dir: string) => Promise<void>) =>
      it(title, async (t) => {
        const ts = await make(t);
        if (ts === undefined) return;
        const dir = mkdtempSync(join(tmpdir(), 'gatehouse-attack-'));
        try {
          await fn(ts, dir);
        } finally {
          await ts.cleanup();
          rmSync(dir, { recursive: true, force: true });
        }
      });
    /** Store and export verdicts, with the keyring and as a third party (public key only). */
    const verdicts = async (ts: TestStore, dir: string, known: KnownStreams = {}): Promise<StreamReport[]> => {
      const file = join(dir, `export-${Math.random().toString(36).slice(2)}.jsonl`);
      await exportStore(ts.store, file);
      return [
        ...(await verifyStore(ts.store, { keyring: K, publicKey: signer.publicKey }, known)),
        ...(await verifyStore(ts.store, { publicKey: signer.publicKey }, known)),
        ...(await verifyExport(file, { keyring: K, publicKey: signer.publicKey })),
        ...(await verifyExport(file, { publicKey: signer.publicKey })),
      ];
    };

    check('a checkpointed tail deleted and declared lost by a forged restart record is "truncated", not a crash gap', async (ts, dir) => {
      const { records, checkpoints } = buildChain(S, 20, K, signer, [10, 18]);
      await ts.store.append(v1StoreRecords(records), checkpoints);
      await ts.tamper.deleteSeqs(S, 16, 20);
      // The operator's key MACs a restart at seq 21 declaring 16..20 lost, linked to 15.
      await ts.store.append(v1StoreRecords([forgedRestart(records, 15, 21)]), []);
      const reps = await verdicts(ts, dir);
      assert.equal(reps.length, 4);
      for (const rep of reps) {
        const p = rep.problems[0];
        assert.equal(p?.kind, 'truncated', JSON.stringify(rep.problems));
        assert.equal(p?.seq, 16);
        assert.match(p.detail, /signed checkpoint at seq 18/);
        assert.ok(!rep.problems.some((x) => x.kind === 'gap'), JSON.stringify(rep.problems));
      }
    });

    check('a real crash (no checkpoint covers the declared range) is still a "gap"', async (ts, dir) => {
      const { records, checkpoints } = buildChain(S, 15, K, signer, [10]);
      await ts.store.append(v1StoreRecords(records), checkpoints);
      await ts.store.append(v1StoreRecords([forgedRestart(records, 15, 21)]), []);
      for (const rep of await verdicts(ts, dir)) {
        assert.deepEqual(
          rep.problems.map((p) => [p.kind, p.seq]),
          [['gap', 16]],
        );
      }
    });

    check('a wiped store fails for the stream the state directory names; with its checkpoints left, "truncated"', async (ts, dir) => {
      const { records, checkpoints } = buildChain(S, 12, K, signer, [10]);
      await ts.store.append(v1StoreRecords(records), checkpoints);
      await ts.tamper.deleteSeqs(S, 1, 12);
      for (const rep of await verdicts(ts, dir)) {
        assert.equal(rep.problems[0]?.kind, 'truncated', JSON.stringify(rep.problems));
      }
      // Nothing left at all but the state directory's stream id.
      await ts.tamper.plain('truncate').catch(() => undefined);
      const empty = await verifyStore(ts.store, { keyring: K, publicKey: signer.publicKey }, { streams: ['gw-never-written'] });
      const rep = empty.find((r) => r.stream === 'gw-never-written');
      assert.equal(rep?.problems[0]?.kind, 'deleted');
      assert.match(rep.problems[0].detail, /no records/);
    });

    check('a store wiped of records and checkpoints still fails for a stream its archive anchors name', async (ts) => {
      const { records, checkpoints } = buildChain(S, 12, K, signer, [10]);
      await ts.store.append(v1StoreRecords(records), checkpoints);
      const cp = checkpoints[0] as (typeof checkpoints)[number];
      await ts.store.addArchiveAnchor({
        stream: S,
        seq: 10,
        hash: (records[9] as ChainedRecord).hash,
        frontier: cp.frontier,
        checkpoint: cp.checkpoint,
        segment: { index: 0, first_seq: 1, records: 10, manifest_key: 'm', manifest_sha256: '00'.repeat(32), data_key: 'd', data_sha256: '00'.repeat(32) },
        location: '/archive',
        archived_at: new Date().toISOString(),
        row_id: 10,
      });
      await ts.tamper.deleteSeqs(S, 1, 12);
      await ts.tamper.deleteCheckpoints(S);
      const reps = await verifyStore(ts.store, { keyring: K, publicKey: signer.publicKey });
      assert.equal(reps.length, 1);
      assert.equal(reps[0]?.problems[0]?.kind, 'deleted');
      assert.match(reps[0]?.problems[0]?.detail ?? '', /no records/);
    });

    check('an async crash is a "gap" named by verification before any restart; not while the writer runs', async (ts) => {
      const { records, checkpoints } = buildChain(S, 30, K, signer, [10]);
      await ts.store.append(v1StoreRecords(records), checkpoints);
      const state = { stream: S, reserved: 30 + 4096, pid: 2 ** 22 + 17 };
      const dead = await verifyStore(ts.store, { keyring: K, publicKey: signer.publicKey }, { streams: [S], state, alive: () => false });
      assert.deepEqual(
        dead[0]?.problems.map((p) => [p.kind, p.seq]),
        [['gap', 31]],
      );
      assert.match(dead[0]?.problems[0]?.detail ?? '', /seqs 31\.\.4126 were reserved by a writer that did not stop cleanly/);
      const running = await verifyStore(ts.store, { keyring: K, publicKey: signer.publicKey }, { streams: [S], state, alive: () => true });
      assert.deepEqual(running[0]?.problems, []);
      // A clean stop hands the reservation back (no pid): nothing to name.
      const clean = await verifyStore(ts.store, { keyring: K, publicKey: signer.publicKey }, { streams: [S], state: { stream: S, reserved: 30 } });
      assert.deepEqual(clean[0]?.problems, []);
    });

    check('an export line that is not JSON is "malformed" with its line; the other streams still verify', async (ts, dir) => {
      const a = buildChain('gw-a', 6, K, signer, [6]);
      const b = buildChain('gw-b', 6, K, signer, [6]);
      await ts.store.append(v1StoreRecords(a.records), a.checkpoints);
      await ts.store.append(v1StoreRecords(b.records), b.checkpoints);
      const file = join(dir, 'export.jsonl');
      await exportStore(ts.store, file);
      const lines = readFileSync(file, 'utf8').split('\n');
      // Line 4 (the header is line 1) is gw-a's record 3: cut in half.
      lines[3] = (lines[3] as string).slice(0, 40);
      writeFileSync(file, lines.join('\n'));
      const reps = await verifyExport(file, { keyring: K, publicKey: signer.publicKey });
      const ra = reps.find((r) => r.stream === 'gw-a');
      const rb = reps.find((r) => r.stream === 'gw-b');
      assert.ok(ra !== undefined && rb !== undefined);
      // The unreadable record is missing from the chain too (and from the Merkle root the
      // checkpoint at 6 signs): what cannot be read cannot be vouched for.
      assert.deepEqual(
        ra.problems.map((p) => [p.kind, p.seq]),
        [
          ['malformed', 3],
          ['deleted', 3],
          ['modified', 6],
        ],
      );
      assert.match(ra.problems[0]?.detail ?? '', /line 4 of the export is not JSON/);
      assert.deepEqual(rb.problems, []);
    });
  });
}

attacks('sqlite', makeSqlite);
attacks('postgres', makePostgres);
