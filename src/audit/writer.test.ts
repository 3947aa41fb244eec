/**
 * The writer against a real SQLite store: a restart continues the stream (never a new
 * genesis), a crash's loss is a named gap, a store outage spools and replays in order,
 * the spool limit stops admission, checkpoints are signed by count, and key rotation
 * keeps old records verifiable.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type TestContext } from 'node:test';
import { canonical } from './canonical.js';
import { parseStoredV2, rootOfLeaves, sealOf } from './v2.js';
import type { ChainedRecord } from './record.js';
import { createSqliteAuditStore } from './store/sqlite.js';
import type { AuditStore } from './store/types.js';
import { buildChain, HMAC_K1, HMAC_K2, keyring, testSigner, testBody as body } from './test-support.js';
import { verifyStore } from './sources.js';
import { checkStream, type V2CheckReport } from './test-v2.js';
import { auditSealWorker, AuditWriter, type WriterOptions } from './writer.js';
import { v1StoreRecords } from './chain.js';
import { saveStreamState } from './stream-state.js';

/** A store that fails while `down` is set (an outage). */
function flaky(inner: AuditStore): AuditStore & { down: boolean } {
  const s = {
    down: false,
    kind: inner.kind,
    init: () => inner.init(),
    append: (r, c) => (s.down ? Promise.reject(new Error('connection refused')) : inner.append(r, c)),
    head: (x) => (s.down ? Promise.reject(new Error('connection refused')) : inner.head(x)),
    lastCheckpoint: (x) => (s.down ? Promise.reject(new Error('connection refused')) : inner.lastCheckpoint(x)),
    migrate: () => inner.migrate(),
    leavesAfter: (x, a) => inner.leavesAfter(x, a),
    streams: () => inner.streams(),
    readRaw: (x, a, l) => inner.readRaw(x, a, l),
    checkpoints: (x) => inner.checkpoints(x),
    query: (q) => inner.query(q),
    addArchiveAnchor: (a) => inner.addArchiveAnchor(a),
    archiveAnchors: (x) => inner.archiveAnchors(x),
    prune: (x, n) => inner.prune(x, n),
    prunedTo: (x) => inner.prunedTo(x),
    close: () => inner.close(),
  } as AuditStore & { down: boolean };
  return s;
}

const K1 = keyring({ k1: HMAC_K1 }, 'k1');
const signer = testSigner();

function setup(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-w-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const stores: AuditStore[] = [];
  const open = () => {
    const s = flaky(createSqliteAuditStore(join(dir, 'audit.sqlite')));
    stores.push(s);
    return s;
  };
  t.after(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
  });
  const opts = (store: AuditStore, o: Partial<WriterOptions> = {}): WriterOptions => ({
    store,
    keyring: K1,
    signer,
    stateDir: dir,
    instance: 'test',
    mode: 'async',
    flushIntervalMs: 5,
    batchMax: 1000,
    checkpointRecords: 5,
    checkpointIntervalMs: 0,
    spoolLimitBytes: 1 << 20,
    retryMs: 0,
    ...o,
  });
  return { dir, open, opts };
}

/**
 * The stream checked twice: by the verifier (verify.ts) and by the tests' own check
 * straight from the chain arithmetic (test-v2.ts); both must name the same problems.
 */
async function verifyOne(store: AuditStore, keys = K1): Promise<V2CheckReport> {
  const streams = await store.streams();
  assert.equal(streams.length, 1);
  const own = await checkStream(store, streams[0] as string, keys, signer.publicKey);
  const [rep] = await verifyStore(store, { keyring: keys, publicKey: signer.publicKey });
  assert.deepEqual(
    rep?.problems.map((p) => [p.seq, p.kind]),
    own.problems.map((p) => [p.seq, p.kind]),
  );
  assert.equal(rep?.records, own.records);
  assert.equal(rep?.lastSeq, own.lastSeq);
  return own;
}

test('a restart continues the stream from the stored head: one stream, one chain', async (t) => {
  const { open, opts } = setup(t);
  const s1 = open();
  const w1 = await AuditWriter.open(opts(s1));
  for (let i = 0; i < 7; i++) void w1.append(body(i));
  await w1.close();
  const s2 = open();
  const w2 = await AuditWriter.open(opts(s2));
  assert.equal(w2.stream, w1.stream);
  for (let i = 0; i < 3; i++) void w2.append(body(i));
  await w2.close();
  const rep = await verifyOne(s2);
  assert.deepEqual(rep.problems, []);
  // 2 restart records + 10 exchanges
  assert.equal(rep.records, 12);
  assert.ok(rep.latestCheckpointSeq === 12);
  const restarts = (await s2.query({ limit: 100 })).filter((r) => r.kind === 'restart');
  assert.deepEqual(restarts.map((r) => [r.seq, r.count]), [[1, 0], [9, 0]]);
});

test('the store down at start: open fails, and no new genesis is ever written', async (t) => {
  const { open, opts } = setup(t);
  const s1 = open();
  const w1 = await AuditWriter.open(opts(s1));
  void w1.append(body(1));
  await w1.close();
  const s2 = open();
  s2.down = true;
  await assert.rejects(AuditWriter.open(opts(s2)), /connection refused/);
  s2.down = false;
  const rep = await verifyOne(s2);
  assert.deepEqual(rep.problems, []);
  assert.equal(rep.records, 2);
});

test('a crash loses at most the unwritten reservation, and the restart record names the gap', async (t) => {
  const { open, opts } = setup(t);
  const s1 = open();
  const w1 = await AuditWriter.open(opts(s1, { flushIntervalMs: 60_000 }));
  for (let i = 0; i < 10; i++) void w1.append(body(i));
  await w1.flush();
  // Handed out but never written: the process dies here (the writer is abandoned).
  for (let i = 0; i < 3; i++) void w1.append(body(i));
  const s2 = open();
  const w2 = await AuditWriter.open(opts(s2));
  void w2.append(body(99));
  await w2.close();
  const rep = await verifyOne(s2);
  assert.equal(rep.problems.length, 1, JSON.stringify(rep.problems));
  const p = rep.problems[0] as { seq: number; kind: string; detail: string };
  assert.equal(p.kind, 'gap');
  assert.equal(p.seq, 12);
  assert.match(p.detail, /restart record/);
  const restart = (await s2.query({ limit: 1000 })).find((r) => r.kind === 'restart' && r.count > 0) as ChainedRecord;
  assert.ok(restart.lost_to !== null && restart.lost_to >= 14, 'the declared range covers the 3 lost records');
});

test('store outage: batches spool locally (durable), replay in order on recovery, chain intact', async (t) => {
  const { open, opts } = setup(t);
  const s = open();
  const w = await AuditWriter.open(opts(s));
  for (let i = 0; i < 5; i++) void w.append(body(i));
  await w.flush();
  s.down = true;
  const sync = [];
  for (let i = 0; i < 20; i++) sync.push(w.append(body(100 + i)));
  await w.flush();
  await Promise.all(sync); // durable in the spool
  assert.equal(w.storeHealthy, false);
  assert.ok(w.status().spool_bytes > 0);
  for (let i = 0; i < 5; i++) void w.append(body(200 + i));
  await w.flush();
  s.down = false;
  void w.append(body(300));
  await w.flush();
  assert.equal(w.status().spool_bytes, 0);
  assert.equal(w.storeHealthy, true);
  await w.close();
  const rep = await verifyOne(s);
  assert.deepEqual(rep.problems, []);
  assert.equal(rep.records, 32);
  const seqs = (await s.query({ limit: 1000 })).map((r) => r.seq);
  assert.deepEqual(seqs, Array.from({ length: 32 }, (_, i) => i + 1));
  // Replayed records are stored as the text they were sealed as (the canonical form, then
  // leaf and, at a batch's end, the seal), like every other record, not re-serialized.
  for (const row of await s.readRaw(w.status().stream, 0, 100)) {
    const p = parseStoredV2(row.data);
    assert.ok(p !== null, row.data);
    assert.equal(`${row.data.slice(0, p.end)}}`, canonical(JSON.parse(row.data) as ChainedRecord), row.data);
  }
  assert.ok(rep.batches > 1);
});

test('the spool limit stops admission until the store is back', async (t) => {
  const { open, opts } = setup(t);
  const s = open();
  const w = await AuditWriter.open(opts(s, { spoolLimitBytes: 2000 }));
  await w.flush();
  s.down = true;
  assert.equal(w.available, true);
  for (let i = 0; i < 10; i++) void w.append(body(i));
  await w.flush();
  assert.equal(w.available, false);
  s.down = false;
  await w.flush();
  assert.equal(w.available, true);
  await w.close();
  assert.deepEqual((await verifyOne(s)).problems, []);
});

test('rotation boundary: records before and after a key change verify with the keyring; each key alone fails on the other side', async (t) => {
  const { open, opts } = setup(t);
  const s = open();
  const w = await AuditWriter.open(opts(s));
  for (let i = 0; i < 3; i++) void w.append(body(i));
  await w.flush();
  const ring = keyring({ k1: HMAC_K1, k2: HMAC_K2 }, 'k2');
  w.setKeyring(ring);
  for (let i = 0; i < 3; i++) void w.append(body(i));
  await w.close();
  // A restart with the new ring continues across the boundary.
  const w2 = await AuditWriter.open(opts(s, { keyring: ring }));
  void w2.append(body(9));
  await w2.close();
  const kids = (await s.query({ limit: 100 })).map((r) => `${r.seq}:${r.kid}`);
  assert.deepEqual(kids, ['1:k1', '2:k1', '3:k1', '4:k1', '5:k2', '6:k2', '7:k2', '8:k2', '9:k2']);
  assert.deepEqual((await verifyOne(s, ring)).problems, []);
  const onlyNew = await verifyOne(s, keyring({ k2: HMAC_K2 }, 'k2'));
  assert.deepEqual([onlyNew.problems[0]?.seq, onlyNew.problems[0]?.kind], [1, 'wrong_key']);
  const onlyOld = await verifyOne(s, K1);
  assert.deepEqual([onlyOld.problems[0]?.seq, onlyOld.problems[0]?.kind], [5, 'wrong_key']);
});

test('checkpoints are signed every checkpoint_records records and on close', async (t) => {
  const { open, opts } = setup(t);
  const s = open();
  const w = await AuditWriter.open(opts(s, { checkpointRecords: 4, batchMax: 1 }));
  for (let i = 0; i < 9; i++) {
    void w.append(body(i));
    await w.flush();
  }
  await w.close();
  const cps = await s.checkpoints(w.stream);
  assert.deepEqual(cps.map((c) => c.seq), [4, 8, 10]);
  assert.deepEqual((await verifyOne(s)).problems, []);
});

test('a quiet stream still gets its checkpoint once checkpoint_interval has passed', async (t) => {
  const { open, opts } = setup(t);
  const s = open();
  let now = 1_700_000_000_000;
  const w = await AuditWriter.open(opts(s, { checkpointRecords: 0, checkpointIntervalMs: 50, now: () => now }));
  void w.append(body(1));
  await w.flush();
  assert.equal((await s.checkpoints(w.stream)).length, 0);
  now += 60;
  // No new record: the writer's own timer signs the checkpoint.
  for (let i = 0; i < 50 && (await s.checkpoints(w.stream)).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  const cps = await s.checkpoints(w.stream);
  assert.deepEqual(cps.map((c) => c.seq), [2]);
  await w.close();
});

test('the writer writes v2: one leaf per record, one seal per batch, checkpoints at batch ends over the seal and the leaves', async (t) => {
  const { open, opts } = setup(t);
  const s = open();
  const w = await AuditWriter.open(opts(s, { checkpointRecords: 7 }));
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 5; i++) void w.append(body(round * 10 + i));
    await w.flush();
  }
  await w.close();
  const rep = await verifyOne(s);
  assert.deepEqual(rep.problems, []);
  assert.equal(rep.records, 21);
  assert.equal(rep.v2, 21);
  assert.equal(rep.batches, 4);
  // Every checkpoint ends a batch: its head_hash is that batch's seal.
  const rows = await s.readRaw(w.stream, 0, 100);
  const cps = await s.checkpoints(w.stream);
  // checkpoint_records 7: the first batch end at or past 7 records since the last one.
  assert.deepEqual(cps.map((c) => c.seq), [11, 21]);
  for (const c of cps) {
    const at = parseStoredV2((rows[c.seq - 1] as { data: string }).data);
    assert.equal(c.head_hash, at?.seal, `checkpoint at ${c.seq}`);
  }
  assert.equal(rep.latestCheckpointSeq, 21);
  assert.deepEqual(await s.head(w.stream), { seq: 21, hash: w.status().head_hash });
});

test('a v1 stream (an older gatehouse) is continued in v2: the first batch\'s seal links to the last v1 hash', async (t) => {
  const { dir, open, opts } = setup(t);
  const s = open();
  const S = 'gw-v1-then-v2';
  const { records, checkpoints } = buildChain(S, 12, K1, signer, [10]);
  await s.append(v1StoreRecords(records), checkpoints);
  saveStreamState(dir, { stream: S, reserved: 12 });
  const w = await AuditWriter.open(opts(s, { stream: S }));
  for (let i = 0; i < 6; i++) void w.append(body(i));
  await w.close();
  const rep = await verifyOne(s);
  assert.deepEqual(rep.problems, []);
  assert.equal(rep.records, 19);
  assert.equal(rep.v2, 7);
  assert.equal(rep.latestCheckpointSeq, 19);
  // The first v2 batch was sealed over the last v1 record's hash.
  const rows = (await s.readRaw(S, 0, 100)).map((r) => r.data);
  assert.equal(parseStoredV2(rows[11] as string), null);
  const batch: string[] = [];
  let end = 12;
  for (; parseStoredV2(rows[end] as string)?.seal == null; end++) batch.push(parseStoredV2(rows[end] as string)?.leaf as string);
  const last = parseStoredV2(rows[end] as string);
  batch.push(last?.leaf as string);
  assert.equal(last?.sealFirst, 13);
  assert.equal(last?.seal, sealOf(K1.active, (records[11] as ChainedRecord).hash, 13, end + 1, rootOfLeaves(batch)));
});

test('a seal worker that dies fails the writer closed: unavailable, the dependency down, nothing acknowledged that is not stored', async (t) => {
  const { open, opts } = setup(t);
  const s = open();
  const health = { downs: 0, ups: 0, up() { this.ups++; }, down() { this.downs++; } };
  const lines: unknown[] = [];
  const log = { error: (o: unknown) => lines.push(o), warn: () => undefined, info: () => undefined } as unknown as WriterOptions['log'];
  const w = await AuditWriter.open(opts(s, { mode: 'sync', health, log }));
  const acked: number[] = [];
  const refused: number[] = [];
  const track = (i: number) => w.append(body(i)).then(() => acked.push(i), () => refused.push(i));
  await Promise.all(Array.from({ length: 20 }, (_, i) => track(i)));
  assert.equal(acked.length, 20);
  // Records in flight while the thread is ended: each is acknowledged only if stored.
  const inflight = Array.from({ length: 50 }, (_, i) => track(100 + i));
  const worker = auditSealWorker(w);
  assert.ok(worker !== undefined);
  await worker.terminate();
  await Promise.all(inflight);
  assert.equal(w.unavailable, 'seal_failed');
  assert.equal(w.available, false);
  assert.ok(health.downs >= 1);
  assert.ok(lines.some((l) => (l as { event?: string }).event === 'audit_seal_failed'));
  await assert.rejects(w.append(body(999)), /seal worker/);
  assert.equal(acked.length + refused.length, 70);
  await w.close();
  const stored = new Set((await s.query({ limit: 1000 })).map((r) => r.request_id));
  for (const i of acked) assert.ok(stored.has(`r${i}`), `acknowledged record r${i} is stored`);
  // What is stored verifies (the restart record and every batch sealed before the end).
  assert.deepEqual((await verifyOne(s)).problems, []);
  // A restart continues from the stored head.
  const w2 = await AuditWriter.open(opts(open(), { mode: 'sync' }));
  await w2.append(body(1000));
  await w2.close();
  assert.deepEqual((await verifyOne(s)).problems, []);
});
