/**
 * The writer overlaps sealing with the store write: one batch may be sealed while the
 * previous one is being written, never more (later records wait in the queue and go into
 * one batch: group commit), and the writes reach the store one at a time, in seq order.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type TestContext } from 'node:test';
import type { ChainedRecord } from './record.js';
import { verifyStore } from './sources.js';
import { checkStream } from './test-v2.js';
import { createSqliteAuditStore } from './store/sqlite.js';
import type { AuditStore } from './store/types.js';
import { HMAC_K1, keyring, testSigner, testBody as body } from './test-support.js';
import { AuditWriter } from './writer.js';

/** A store whose appends wait for `release()`; records every append's seqs and how many writes overlapped. */
function gated(inner: AuditStore) {
  const batches: number[][] = [];
  const gates: Array<() => void> = [];
  let writing = 0;
  let maxWriting = 0;
  const store: AuditStore = {
    ...inner,
    kind: inner.kind,
    async append(records, cps) {
      batches.push(records.map((r) => r.seq));
      writing++;
      maxWriting = Math.max(maxWriting, writing);
      await new Promise<void>((resolve) => gates.push(resolve));
      try {
        await inner.append(records, cps);
      } finally {
        writing--;
      }
    },
  };
  return {
    store,
    batches,
    get maxWriting() {
      return maxWriting;
    },
    /** Lets the oldest waiting append go on; resolves once one is waiting. */
    async release() {
      while (gates.length === 0) await new Promise((r) => setImmediate(r));
      (gates.shift() as () => void)();
    },
  };
}

/** A SQLite store in a temp dir (removed after the test) behind the gate. */
function gatedSqlite(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-pipe-'));
  const inner = createSqliteAuditStore(join(dir, 'audit.sqlite'));
  t.after(async () => {
    await inner.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, inner, g: gated(inner) };
}

test('one batch is sealed while the previous one is written; later records wait and go in one batch; writes stay in seq order', async (t) => {
  const { dir, inner, g } = gatedSqlite(t);
  const signer = testSigner();
  const K = keyring({ k1: HMAC_K1 }, 'k1');
  const w = await AuditWriter.open({ store: g.store, keyring: K, signer, stateDir: dir, instance: 'test', mode: 'async', flushIntervalMs: 60_000, batchMax: 10_000, checkpointRecords: 0, checkpointIntervalMs: 0, spoolLimitBytes: 1 << 20, retryMs: 0 });
  // Batch A: the restart record and 1..4 more; its write waits at the gate.
  for (let i = 0; i < 4; i++) void w.append(body(i));
  const a = w.flush();
  // Batch B is sealed at once although A is still being written.
  for (let i = 0; i < 3; i++) void w.append(body(i));
  const b = w.flush();
  // B goes to the seal worker at once, although A is still being written.
  assert.equal(w.status().next_seq, 9);
  while (w.status().head_seq < 8) await new Promise((r) => setImmediate(r));
  assert.deepEqual(g.batches, [[1, 2, 3, 4, 5]], 'B sealed while A is written');
  // C and D: a batch already waits, so these records stay queued and become one batch.
  for (let i = 0; i < 2; i++) void w.append(body(i));
  const c = w.flush();
  for (let i = 0; i < 2; i++) void w.append(body(i));
  const d = w.flush();
  assert.equal(w.status().head_seq, 8, 'nothing more sealed while one batch waits');
  assert.equal(w.status().queued, 4);
  assert.deepEqual(g.batches, [[1, 2, 3, 4, 5]], 'B is not written before A is done');
  await g.release();
  await a;
  await g.release();
  await b;
  await g.release();
  await Promise.all([c, d]);
  assert.deepEqual(g.batches, [[1, 2, 3, 4, 5], [6, 7, 8], [9, 10, 11, 12]]);
  assert.equal(g.maxWriting, 1, 'one store write at a time');
  const closing = w.close();
  await g.release();
  await closing;
  const rep = await checkStream(inner, w.stream, K, signer.publicKey);
  assert.deepEqual(rep.problems, []);
  assert.equal(rep.batches, 3);
  assert.deepEqual((await verifyStore(inner, { keyring: K, publicKey: signer.publicKey }))[0]?.problems, []);
  assert.deepEqual((await inner.query({ limit: 100 })).map((r: ChainedRecord) => r.seq), Array.from({ length: 12 }, (_, i) => i + 1));
});

test('a backlog is written in batches of at most batch_max; every waiter is released once its records are durable; the queue limit makes the writer unavailable', async (t) => {
  const { dir, inner, g } = gatedSqlite(t);
  const K = keyring({ k1: HMAC_K1 }, 'k1');
  const w = await AuditWriter.open({ store: g.store, keyring: K, signer: testSigner(), stateDir: dir, instance: 'test', mode: 'async', flushIntervalMs: 60_000, batchMax: 4, checkpointRecords: 0, checkpointIntervalMs: 0, spoolLimitBytes: 1 << 20, queueLimit: 10, retryMs: 0 });
  // The restart record plus 9: a queue of 10 reaches the limit.
  const waits: Array<Promise<void>> = [];
  for (let i = 0; i < 9; i++) waits.push(w.append(body(i)));
  assert.equal(w.unavailable, 'queue_full');
  assert.equal(w.available, false);
  let released = 0;
  for (const p of waits) void p.then(() => released++);
  const all = w.flush();
  // Writes go one at a time: 4, then 4, then 2 (the rest of the backlog).
  for (let i = 0; i < 3; i++) await g.release();
  await all;
  await Promise.all(waits);
  assert.equal(released, 9);
  assert.deepEqual(g.batches, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]);
  assert.equal(w.available, true, 'the queue drained');
  const closing = w.close();
  await g.release();
  await closing;
  const rep = await checkStream(inner, w.stream, K);
  assert.deepEqual(rep.problems, []);
  assert.equal(rep.lastSeq, 10);
  assert.deepEqual((await verifyStore(inner, { keyring: K }))[0]?.problems, []);
});
