/**
 * The archiver against both targets (a directory; an S3-compatible server the test
 * starts): round trip across segment boundaries, records kept exactly as stored, the
 * bucket going away and coming back, a public bucket refused, Object Lock retention,
 * pruning only after archive + read-back, and what it refuses to upload; a stream that
 * switched from chain format v1 to v2 (anchors and prunes on seals, proofs of pruned
 * records from the archive).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyStore } from '../sources.js';
import { HMAC_K1, keyring, makePostgres, makeSqlite, testSigner, type TestStore } from '../test-support.js';
import { startTestS3, type TestS3 } from '../../testing/s3-server.js';
import { Archiver, ArchiveError, type ArchiverMetrics, type ArchiverOptions } from './archiver.js';
import { decodeRecords, manifestKey, parseManifest } from './format.js';
import { ArchiveTargetError, type ArchiveTarget } from './target.js';
import { eventLog, growingStream, s3TargetFor, tempDirTarget } from './test-archive.js';
import { verifyArchive } from './verify-archive.js';
import { proveConsistency, proveInclusion, storeProofSource, verifyProof } from '../proof.js';
import type { ArchiveAnchor, StoredCheckpoint } from '../store/types.js';
import { buildMixedChain } from '../test-mixed-chain.js';
import { archiveProofSource } from './proof-source.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-arch';

interface Env {
  ts: TestStore;
  target: ArchiveTarget;
  s3: TestS3 | null;
  cleanup(): Promise<void>;
}

const envs: Record<string, () => Promise<Env>> = {
  directory: async () => {
    const ts = (await makeSqlite({} as never)) as TestStore;
    const d = tempDirTarget();
    return { ts, target: d.target, s3: null, cleanup: async () => (await ts.cleanup(), d.cleanup()) };
  },
  s3: async () => {
    const ts = (await makeSqlite({} as never)) as TestStore;
    const s3 = await startTestS3();
    const target = s3TargetFor(s3);
    return { ts, target, s3, cleanup: async () => (await target.close(), await s3.close(), await ts.cleanup()) };
  },
};

function recorder() {
  const m = { segments: 0, records: 0, failures: [] as string[], up: [] as boolean[], pruned: 0, lock: [] as boolean[] };
  const metrics: ArchiverMetrics = {
    segment: (n) => {
      m.segments++;
      m.records += n;
    },
    failure: (r) => m.failures.push(r),
    up: (ok) => m.up.push(ok),
    success: () => undefined,
    pruned: (n) => (m.pruned += n),
    objectLock: (on) => m.lock.push(on),
  };
  return { m, metrics };
}

function options(env: Env, extra: Partial<ArchiverOptions> = {}): ArchiverOptions & { signer: ReturnType<typeof testSigner> } {
  return { store: env.ts.store, target: env.target, stream: S, keyring: K, signer: SIGNER, segmentRecords: 20, intervalMs: 60_000, keepLocalMs: null, retentionMs: 86_400_000, objectLock: 'if_supported', retryMaxMs: 50, ...extra };
}
const SIGNER = testSigner();

for (const [name, make] of Object.entries(envs)) {
  describe(`archiver: ${name}`, () => {
    it('round trip: closed segments end at checkpoints, hold every record exactly as stored, and the archive verifies alone across segment boundaries', async () => {
      const env = await make();
      try {
        const s = growingStream(env.ts.store, S, K, SIGNER);
        await s.add(45, [10, 20, 30, 40]);
        const { m, metrics } = recorder();
        const a = await Archiver.open(options(env, { metrics }));
        assert.deepEqual(await a.runNow(), { segments: 2, pruned: 0 });
        // Up to segment_records (20) per segment, ending at checkpoints; 41..45 are not closed yet.
        assert.deepEqual((await env.ts.store.archiveAnchors(S)).map((x) => [x.segment.index, x.segment.first_seq, x.seq]), [
          [0, 1, 20],
          [1, 21, 40],
        ]);
        assert.equal(m.records, 40);
        const stored = (await env.ts.store.readRaw(S, 0, 100)).map((r) => r.data);
        const m1 = parseManifest((await env.target.get(manifestKey(env.target.prefix, S, 1))) as Buffer);
        assert.ok(typeof m1 !== 'string');
        assert.deepEqual(await decodeRecords((await env.target.get(m1.data.key)) as Buffer), stored.slice(20, 40));
        assert.deepEqual(m1.checkpoints.map((c) => c.seq), [30, 40]);
        // Later records become the next segment; verification runs across all of them.
        await s.add(70, [50, 60, 70]);
        assert.deepEqual(await a.runNow(), { segments: 2, pruned: 0 });
        const reps = await verifyArchive(env.target, { keyring: K, publicKey: SIGNER.publicKey });
        assert.equal(reps.length, 1);
        assert.deepEqual(reps[0]?.problems, []);
        assert.deepEqual(reps[0]?.records.problems, []);
        assert.equal(reps[0]?.records.records, 70);
        assert.equal(reps[0]?.segments, 4);
        assert.equal(reps[0]?.records.latestCheckpointSeq, 70);
        // A third party (public key only) verifies it too.
        const third = await verifyArchive(env.target, { publicKey: SIGNER.publicKey });
        assert.deepEqual([third[0]?.problems, third[0]?.records.problems], [[], []]);
        await a.close();
      } finally {
        await env.cleanup();
      }
    });

    it('a declared crash gap is archived as it is (the archive reports the same gap as the store)', async () => {
      const env = await make();
      try {
        const s = growingStream(env.ts.store, S, K, SIGNER);
        await s.add(5, [], { gapTo: 9 });
        await s.add(15, [15]);
        const a = await Archiver.open(options(env));
        assert.equal((await a.runNow()).segments, 1);
        const rep = (await verifyArchive(env.target, { keyring: K, publicKey: SIGNER.publicKey }))[0];
        assert.deepEqual(rep?.problems, []);
        assert.deepEqual(rep?.records.problems.map((p) => [p.seq, p.kind]), [[6, 'gap']]);
        await a.close();
      } finally {
        await env.cleanup();
      }
    });

    it('pruning: only archived, read-back segments older than keep_local go; the rest of the stream still verifies locally, and archive + local are one chain', async () => {
      const env = await make();
      try {
        const s = growingStream(env.ts.store, S, K, SIGNER);
        await s.add(50, [10, 20, 30, 40, 50]);
        const { m, metrics } = recorder();
        // Checkpoint times are 1_700_000_000_000 + seq s: keep_local cuts between seq 20 and 30.
        const now = () => 1_700_000_000_000 + 25_000 + 3_600_000;
        const a = await Archiver.open(options(env, { metrics, keepLocalMs: 3_600_000, now }));
        assert.deepEqual(await a.runNow(), { segments: 3, pruned: 20 });
        assert.equal(m.pruned, 20);
        assert.equal((await env.ts.store.prunedTo(S))?.seq, 20);
        const left = await env.ts.store.readRaw(S, 0, 100);
        assert.equal(left.length, 30);
        const local = await verifyStore(env.ts.store, { keyring: K, publicKey: SIGNER.publicKey });
        assert.deepEqual(local[0]?.problems, []);
        assert.equal(local[0]?.records, 30);
        const arch = await verifyArchive(env.target, { keyring: K, publicKey: SIGNER.publicKey, anchors: (st) => env.ts.store.archiveAnchors(st) });
        assert.deepEqual([arch[0]?.problems, arch[0]?.records.problems], [[], []]);
        // The archive's end state at the prune point is where the local store begins.
        assert.equal(arch[0]?.records.records, 50);
        await a.close();
      } finally {
        await env.cleanup();
      }
    });

    it('a stream that switched from v1 to v2: segments across the switch, anchors on seals, pruning through a seal, the store continues from it, and proofs of pruned records come from the archive', async () => {
      const env = await make();
      try {
        // v1 1..25, then v2 batches 26..30, 31..37, 38..40, 41..50, 51..62, 63..70 | 71..76, 77..90.
        const c = buildMixedChain(S, 25, [5, 7, 3, 10, 12, 8, 6, 14], K, SIGNER, [10, 25, 30, 40, 50, 62, 70, 90]);
        const value = (seq: number) => (c.records[seq - 1] as { chain: string | null }).chain;
        await env.ts.store.append(
          c.records.filter((r) => r.seq <= 70),
          c.checkpoints.filter((x) => x.checkpoint.seq <= 70),
        );
        // Every checkpoint through 70 is older than keep_local.
        const now = () => 1_700_000_000_000 + 71_000 + 3_600_000;
        const a = await Archiver.open(options(env, { keepLocalMs: 3_600_000, now }));
        assert.deepEqual(await a.runNow(), { segments: 4, pruned: 70 });
        // Segment 1 holds v1 records 11..25 and v2 records 26..30; anchors carry the chain value.
        assert.deepEqual(
          (await env.ts.store.archiveAnchors(S)).map((x) => [x.segment.index, x.segment.first_seq, x.seq, x.hash]),
          [
            [0, 1, 10, value(10)],
            [1, 11, 30, value(30)],
            [2, 31, 50, value(50)],
            [3, 51, 70, value(70)],
          ],
        );
        const m1 = parseManifest((await env.target.get(manifestKey(env.target.prefix, S, 1))) as Buffer);
        assert.ok(typeof m1 !== 'string');
        assert.deepEqual(await decodeRecords((await env.target.get(m1.data.key)) as Buffer), c.records.slice(10, 30).map((r) => r.data));
        // Pruned through the seal at 70: the store's head is that chain value, and the next batches continue from it.
        assert.deepEqual([(await env.ts.store.prunedTo(S))?.hash, await env.ts.store.head(S)], [value(70), { seq: 70, hash: value(70) }]);
        await env.ts.store.append(
          c.records.filter((r) => r.seq > 70),
          c.checkpoints.filter((x) => x.checkpoint.seq > 70),
        );
        const local = await verifyStore(env.ts.store, { keyring: K, publicKey: SIGNER.publicKey });
        assert.deepEqual([local[0]?.problems, local[0]?.records], [[], 20]);
        const arch = await verifyArchive(env.target, { keyring: K, publicKey: SIGNER.publicKey, anchors: (st) => env.ts.store.archiveAnchors(st) });
        assert.deepEqual([arch[0]?.problems, arch[0]?.records.problems, arch[0]?.records.records], [[], [], 70]);
        const third = await verifyArchive(env.target, { publicKey: SIGNER.publicKey });
        assert.deepEqual([third[0]?.problems, third[0]?.records.problems], [[], []]);

        // Proofs: the store alone refuses the pruned stream; the archive (+ the store) proves.
        await assert.rejects(proveInclusion(storeProofSource(env.ts.store), S, 15, null), /pruned locally; prove from the archive/);
        const both = archiveProofSource(env.target, env.ts.store);
        const pub = SIGNER.publicKey;
        const held25 = (c.checkpoints.find((x) => x.checkpoint.seq === 25) as StoredCheckpoint).checkpoint;
        for (const [seq, cp] of [
          [15, null], // v1, pruned, against the newest checkpoint (in the store only)
          [45, 50], // v2 inside a batch, against a checkpoint only the archive keeps now
          [70, 70], // the anchor's record: the head check against the seal
          [80, 90], // not archived
        ] as const) {
          const p = await proveInclusion(both, S, seq, cp);
          assert.deepEqual(verifyProof(p, pub), [], `record ${seq}`);
          assert.equal(p.checkpoint.seq, cp ?? 90);
        }
        assert.deepEqual(verifyProof(await proveConsistency(both, S, held25, null), pub, held25), []);
        // The archive alone: its own checkpoints, the latest at 70.
        const alone = archiveProofSource(env.target, null);
        const p45 = await proveInclusion(alone, S, 45, null);
        assert.deepEqual([verifyProof(p45, pub), p45.checkpoint.seq], [[], 70]);
        await assert.rejects(proveInclusion(alone, S, 45, 90), /has no checkpoint at seq 90/);
        await a.close();
      } finally {
        await env.cleanup();
      }
    });

    it('a segment that does not verify is never uploaded: archiving stops there with an error, nothing is pruned', async () => {
      const env = await make();
      try {
        const s = growingStream(env.ts.store, S, K, SIGNER);
        await s.add(20, [10, 20]);
        const d = await env.ts.tamper.getData(S, 7);
        await env.ts.tamper.setData(S, 7, d.replace('/item/7', '/item/X'));
        const { log, events } = eventLog();
        const { m, metrics } = recorder();
        const a = await Archiver.open(options(env, { log, metrics, keepLocalMs: 0 }));
        await assert.rejects(a.runNow(), (err: unknown) => err instanceof ArchiveError && err.reason === 'invalid_segment' && /seq 7: modified/.test(err.message));
        assert.deepEqual(await env.target.list(env.target.prefix), []);
        assert.deepEqual(await env.ts.store.archiveAnchors(S), []);
        assert.equal((await env.ts.store.readRaw(S, 0, 100)).length, 20);
        assert.deepEqual(m.failures, ['invalid_segment']);
        assert.ok(events.some((e) => e.level === 'error' && e.event === 'audit_archive_segment_invalid'));
        await a.close();
      } finally {
        await env.cleanup();
      }
    });

    it('a run cut short after the manifest was written (anchor not recorded) is completed by the next run, adopting it', async () => {
      const env = await make();
      try {
        const s = growingStream(env.ts.store, S, K, SIGNER);
        await s.add(20, [10, 20]);
        let fail = true;
        const store = Object.create(env.ts.store) as typeof env.ts.store;
        store.addArchiveAnchor = async (x) => {
          if (fail) {
            fail = false;
            throw new Error('connection lost');
          }
          return env.ts.store.addArchiveAnchor(x);
        };
        const a = await Archiver.open(options({ ...env, ts: { ...env.ts, store } }));
        await assert.rejects(a.runNow(), (err: unknown) => err instanceof ArchiveError && err.reason === 'store');
        const keys = await env.target.list(env.target.prefix);
        assert.equal(keys.length, 2);
        // A new process: its manifest differs (another creation time) but describes the same segment.
        const b = await Archiver.open(options({ ...env, ts: { ...env.ts, store } }, { now: () => Date.now() + 5000 }));
        assert.equal((await b.runNow()).segments, 1);
        assert.deepEqual(await env.target.list(env.target.prefix), keys);
        const rep = (await verifyArchive(env.target, { keyring: K, publicKey: SIGNER.publicKey, anchors: (st) => env.ts.store.archiveAnchors(st) }))[0];
        assert.deepEqual([rep?.problems, rep?.records.problems], [[], []]);
        await a.close();
        await b.close();
      } finally {
        await env.cleanup();
      }
    });

    it('another writer\'s objects under this stream\'s keys are a conflict: never overwritten, archiving stops', async () => {
      const env = await make();
      try {
        const s = growingStream(env.ts.store, S, K, SIGNER);
        await s.add(10, [10]);
        await env.target.putOnce(manifestKey(env.target.prefix, S, 0), Buffer.from('{"not":"ours"}'));
        const { log, events } = eventLog();
        const a = await Archiver.open(options(env, { log }));
        await assert.rejects(a.runNow(), (err: unknown) => err instanceof ArchiveError && err.reason === 'conflict');
        assert.deepEqual(await env.target.get(manifestKey(env.target.prefix, S, 0)), Buffer.from('{"not":"ours"}'));
        assert.deepEqual(await env.ts.store.archiveAnchors(S), []);
        assert.ok(events.some((e) => e.event === 'audit_archive_conflict'));
        await a.close();
      } finally {
        await env.cleanup();
      }
    });

    it('a read-back that does not match what was verified records no anchor and prunes nothing', async () => {
      const env = await make();
      try {
        const s = growingStream(env.ts.store, S, K, SIGNER);
        await s.add(10, [10]);
        const lying: ArchiveTarget = { ...env.target, get: async (k) => ((await env.target.get(k)) === null ? null : Buffer.from('something else')) };
        const a = await Archiver.open(options({ ...env, target: lying }, { keepLocalMs: 0 }));
        await assert.rejects(a.runNow(), (err: unknown) => err instanceof ArchiveError && err.reason === 'readback');
        assert.deepEqual(await env.ts.store.archiveAnchors(S), []);
        assert.equal((await env.ts.store.readRaw(S, 0, 100)).length, 10);
        await a.close();
      } finally {
        await env.cleanup();
      }
    });
  });
}

describe('archiver: PostgreSQL store', () => {
  it('archives a PostgreSQL stream; a gateway role that may not prune leaves the records (one warning) for `gatehouse audit prune`', async (t) => {
    const ts = await makePostgres(t);
    if (ts === undefined) return;
    const d = tempDirTarget();
    try {
      const s = growingStream(ts.store, S, K, SIGNER);
      await s.add(30, [10, 20, 30]);
      const store = Object.create(ts.store) as typeof ts.store;
      store.prune = async () => {
        throw new Error(`permission denied for function audit_prune`);
      };
      const { log, events } = eventLog();
      const a = await Archiver.open({ store, target: d.target, stream: S, keyring: K, signer: SIGNER, segmentRecords: 10, intervalMs: 60_000, keepLocalMs: 0, retentionMs: 0, objectLock: 'if_supported', retryMaxMs: 100, log });
      assert.deepEqual(await a.runNow(), { segments: 3, pruned: 0 });
      await s.add(40, [40]);
      assert.deepEqual(await a.runNow(), { segments: 1, pruned: 0 });
      assert.equal(events.filter((e) => e.event === 'audit_archive_prune_not_permitted').length, 1);
      assert.equal((await ts.store.readRaw(S, 0, 100)).length, 40);
      // With the right to prune (the store as the owner), the same archive prunes.
      const b = await Archiver.open({ store: ts.store, target: d.target, stream: S, keyring: K, signer: SIGNER, segmentRecords: 10, intervalMs: 60_000, keepLocalMs: 0, retentionMs: 0, objectLock: 'if_supported', retryMaxMs: 100 });
      assert.deepEqual(await b.runNow(), { segments: 0, pruned: 40 });
      const local = await verifyStore(ts.store, { keyring: K, publicKey: SIGNER.publicKey });
      assert.deepEqual(local[0]?.problems, []);
      await a.close();
      await b.close();
    } finally {
      d.cleanup();
      await ts.cleanup();
    }
  });

  it('a v1→v2 PostgreSQL stream prunes through anchors on seals (audit_prune checks the chain value); a forged anchor hash is refused', async (t) => {
    const ts = await makePostgres(t);
    if (ts === undefined) return;
    const d = tempDirTarget();
    try {
      const c = buildMixedChain(S, 12, [8, 5, 5, 10], K, SIGNER, [10, 20, 30, 40]);
      await ts.store.append(c.records, c.checkpoints);
      const a = await Archiver.open({ store: ts.store, target: d.target, stream: S, keyring: K, signer: SIGNER, segmentRecords: 10, intervalMs: 60_000, keepLocalMs: 0, retentionMs: 0, objectLock: 'if_supported', retryMaxMs: 100 });
      assert.deepEqual(await a.runNow(), { segments: 4, pruned: 40 });
      assert.equal((await ts.store.prunedTo(S))?.hash, c.head);
      const local = await verifyStore(ts.store, { keyring: K, publicKey: SIGNER.publicKey });
      assert.deepEqual([local[0]?.problems, local[0]?.records], [[], 0]);
      await a.close();
      // An anchor whose hash is the v2 record's leaf (the row's hash column), not the seal, prunes nothing.
      const other = buildMixedChain('gw-arch-2', 0, [10], K, SIGNER, [10]);
      await ts.store.append(other.records, other.checkpoints);
      const anchor = (await ts.store.archiveAnchors(S))[0] as ArchiveAnchor;
      await ts.store.addArchiveAnchor({ ...anchor, stream: 'gw-arch-2', seq: 10, hash: (other.records[9] as { leaf: string }).leaf, checkpoint: (other.checkpoints[0] as StoredCheckpoint).checkpoint });
      await assert.rejects(ts.store.prune('gw-arch-2', 10));
      assert.equal((await ts.store.readRaw('gw-arch-2', 0, 100)).length, 10);
    } finally {
      d.cleanup();
      await ts.cleanup();
    }
  });
});

describe('archiver: S3 outages and refusals', () => {
  it('the bucket goes down during archiving, then comes back: the run fails "unreachable" (metric, warn event), records stay local, backoff retries until it works (info event), nothing lost', async () => {
    const ts = (await makeSqlite({} as never)) as TestStore;
    const s3 = await startTestS3();
    const target = s3TargetFor(s3);
    try {
      const s = growingStream(ts.store, S, K, SIGNER);
      await s.add(20, [10, 20]);
      const { log, events } = eventLog();
      const { m, metrics } = recorder();
      const a = await Archiver.open({ store: ts.store, target, stream: S, keyring: K, signer: SIGNER, segmentRecords: 10, intervalMs: 60_000, keepLocalMs: 0, retentionMs: 86_400_000, objectLock: 'if_supported', retryMaxMs: 100, log, metrics });
      assert.equal((await a.runNow()).segments, 2);
      await s.add(40, [30, 40]);
      await s3.stop();
      await assert.rejects(a.runNow(), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'unreachable');
      assert.ok(events.some((e) => e.level === 'warn' && e.event === 'audit_archive_unavailable' && e.reason === 'unreachable'));
      assert.deepEqual(m.failures, ['unreachable']);
      assert.equal(m.up.at(-1), false);
      // Nothing archived, nothing more pruned: 21..40 are still local.
      assert.equal((await ts.store.readRaw(S, 0, 100)).length, 20);
      // The timer keeps retrying with backoff (1s, then up to retry_max) while it is down…
      a.start(0);
      const t0 = Date.now();
      while (m.failures.length < 3 && Date.now() - t0 < 20_000) await new Promise((ok) => setTimeout(ok, 20));
      assert.ok(m.failures.length >= 3, 'retried while down');
      assert.equal(events.filter((e) => e.event === 'audit_archive_unavailable').length, 1, 'one warning per outage, not one per retry');
      // …and once it is back, the next retry archives what waited.
      await s3.start();
      while (m.up.at(-1) !== true && Date.now() - t0 < 30_000) await new Promise((ok) => setTimeout(ok, 20));
      assert.equal(m.segments, 4);
      assert.ok(events.some((e) => e.level === 'info' && e.event === 'audit_archive_recovered'));
      assert.equal(m.up.at(-1), true);
      await a.close();
      const rep = (await verifyArchive(target, { keyring: K, publicKey: SIGNER.publicKey }))[0];
      assert.deepEqual([rep?.problems, rep?.records.problems, rep?.records.records], [[], [], 40]);
      // Unsigned requests are only the anonymous probes, and each was refused: two per check
      // (listing, an object) — at open, in the first run and in the run after the outage —
      // and one per manifest written (4).
      assert.equal(s3.refusedUnsigned, 3 * 2 + 4);
    } finally {
      await target.close();
      await s3.close();
      await ts.cleanup();
    }
  });

  it('a public bucket is refused at start, and a bucket made public later stops archiving (error event) before anything more is written or pruned', async () => {
    const ts = (await makeSqlite({} as never)) as TestStore;
    const pub = await startTestS3({ publicAccess: 'anonymous' });
    const s3 = await startTestS3();
    const pubTarget = s3TargetFor(pub);
    const target = s3TargetFor(s3);
    try {
      const s = growingStream(ts.store, S, K, SIGNER);
      await s.add(20, [10, 20]);
      const base = { store: ts.store, stream: S, keyring: K, signer: SIGNER, segmentRecords: 10, intervalMs: 60_000, keepLocalMs: 0, retentionMs: 86_400_000, objectLock: 'if_supported' as const, retryMaxMs: 100 };
      await assert.rejects(Archiver.open({ ...base, target: pubTarget }), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'public');
      const { log, events } = eventLog();
      const a = await Archiver.open({ ...base, target, log });
      assert.equal((await a.runNow()).segments, 2);
      await s.add(40, [30, 40]);
      const before = await target.list('');
      s3.publicAccess = 'anonymous';
      await assert.rejects(a.runNow(), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'public');
      assert.deepEqual(await target.list(''), before);
      assert.equal((await ts.store.readRaw(S, 0, 100)).length, 20, 'seqs 21..40 stay local');
      assert.ok(events.some((e) => e.level === 'error' && e.event === 'audit_archive_public'));
      await a.close();
    } finally {
      await pubTarget.close();
      await target.close();
      await pub.close();
      await s3.close();
      await ts.cleanup();
    }
  });

  it('Object Lock: every object is written with the configured retention; "required" refuses a bucket without it', async () => {
    const ts = (await makeSqlite({} as never)) as TestStore;
    const locked = await startTestS3({ objectLock: true });
    const plain = await startTestS3();
    const lockedTarget = s3TargetFor(locked);
    const plainTarget = s3TargetFor(plain);
    try {
      const s = growingStream(ts.store, S, K, SIGNER);
      await s.add(10, [10]);
      const now = () => Date.parse('2030-01-01T00:00:00Z');
      const base = { store: ts.store, stream: S, keyring: K, signer: SIGNER, segmentRecords: 10, intervalMs: 60_000, keepLocalMs: null, retentionMs: 30 * 86_400_000, objectLock: 'required' as const, retryMaxMs: 100, now };
      await assert.rejects(Archiver.open({ ...base, target: plainTarget }), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'object_lock_missing');
      const a = await Archiver.open({ ...base, target: lockedTarget });
      assert.equal((await a.runNow()).segments, 1);
      assert.equal(locked.locks.size, 2);
      for (const l of locked.locks.values()) {
        assert.equal(l.mode, 'COMPLIANCE', "the bucket's default mode");
        assert.equal(Date.parse(l.retainUntil), now() + 30 * 86_400_000);
      }
      await a.close();
    } finally {
      await lockedTarget.close();
      await plainTarget.close();
      await locked.close();
      await plain.close();
      await ts.cleanup();
    }
  });
});
