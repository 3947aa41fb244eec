/**
 * The SQLite audit store's worker thread (the contract suite covers what it stores): the
 * caller's event loop keeps running while a batch is inserted and fsync'ed, a refused
 * statement rejects its call and the store keeps working, a dead worker makes every call
 * reject instead of hang, close() ends the thread, and a process that used the store exits.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { ChainedRecord } from '../record.js';
import { genesis } from '../canonical.js';
import { Chain, v1StoreRecords } from '../chain.js';
import { MerkleAccumulator } from '../merkle.js';
import { emptyBody } from '../record.js';
import { buildChain, HMAC_K1, keyring, testSigner } from '../test-support.js';
import { createSqliteAuditStore, SqliteStoreError, sqliteStoreWorker } from './sqlite.js';
import type { AuditStore } from './types.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-sqlite';

function tempFile(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-sqlite-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'audit.sqlite');
}

function open(t: TestContext, file: string): AuditStore {
  const store = createSqliteAuditStore(file);
  t.after(() => store.close().catch(() => undefined));
  return store;
}

/** Counts timer callbacks (a 1 ms chain) until `p` settles: zero when the call held the loop throughout. */
async function ticksDuring<T>(p: Promise<T>): Promise<{ ticks: number; result: PromiseSettledResult<T> }> {
  let ticks = 0;
  let done = false;
  const tick = () => {
    if (done) return;
    ticks++;
    setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  const [result] = await Promise.allSettled([p]);
  done = true;
  return { ticks, result: result as PromiseSettledResult<T> };
}

describe('audit store: SQLite worker thread', () => {
  it('a large append does not hold the event loop for the inserts and the fsync: timers keep firing', async (t) => {
    const store = open(t, tempFile(t));
    await store.init();
    const { records, checkpoints } = buildChain(S, 10_000, K, testSigner(), [10_000]);
    const t0 = performance.now();
    const p = store.append(v1StoreRecords(records), checkpoints);
    // What the caller's thread pays: packing the strings and handing them over.
    const held = performance.now() - t0;
    const { ticks, result } = await ticksDuring(p);
    const total = performance.now() - t0;
    assert.equal(result.status, 'fulfilled');
    t.diagnostic(`10 000 records: caller's thread held ${held.toFixed(1)} ms of ${total.toFixed(1)} ms; ${ticks} timer ticks meanwhile`);
    // On the caller's thread the whole transaction ran before append() returned: no tick at all.
    assert.ok(ticks >= 3, `timers fired during the append (${ticks})`);
    assert.deepEqual(await store.head(S), { seq: 10_000, hash: (records[9_999] as ChainedRecord).hash });
  });

  it('a statement SQLite refuses (SQLITE_BUSY) rejects that call with the code, the loop stays free meanwhile, and the store keeps working', async (t) => {
    const file = tempFile(t);
    const store = open(t, file);
    await store.init();
    const { records } = buildChain(S, 4, K, testSigner(), []);
    await store.append(v1StoreRecords(records.slice(0, 2)), []);
    // Another process holds the write lock longer than busy_timeout (5 s).
    const other = new Database(file);
    other.exec('BEGIN IMMEDIATE');
    let released = false;
    try {
      const { ticks, result } = await ticksDuring(store.append(v1StoreRecords(records.slice(2)), []));
      assert.equal(result.status, 'rejected');
      const err = (result as PromiseRejectedResult).reason as SqliteStoreError;
      assert.ok(err instanceof SqliteStoreError);
      assert.equal(err.code, 'SQLITE_BUSY');
      assert.match(err.message, /^audit store \(sqlite\): database is locked/);
      // Waiting for the lock happened in the worker: the caller's loop ran all along.
      assert.ok(ticks > 100, `timers fired while the worker waited for the lock (${ticks})`);
      other.exec('ROLLBACK');
      released = true;
    } finally {
      if (!released) other.exec('ROLLBACK');
      other.close();
    }
    // All or nothing: none of the refused batch is stored, and the same batch goes in now.
    assert.equal((await store.head(S))?.seq, 2);
    await store.append(v1StoreRecords(records.slice(2)), []);
    assert.equal((await store.head(S))?.seq, 4);
  });

  it('a worker terminated mid-append: the waiting call and every later one reject (no hang), nothing half-written, close() resolves', { timeout: 20_000 }, async (t) => {
    const file = tempFile(t);
    const store = open(t, file);
    await store.init();
    const { records } = buildChain(S, 5_000, K, testSigner(), []);
    const p = store.append(v1StoreRecords(records), []);
    const worker = sqliteStoreWorker(store);
    assert.ok(worker !== undefined);
    void worker.terminate();
    await assert.rejects(p, /audit store \(sqlite\): the worker thread exited unexpectedly/);
    await assert.rejects(store.head(S), /exited unexpectedly/);
    await assert.rejects(store.append(v1StoreRecords(records.slice(0, 1)), []), /exited unexpectedly/);
    await store.close();
    // One transaction per append: the batch is in whole or not at all.
    const again = open(t, file);
    const head = await again.head(S);
    assert.ok(head === null || head.seq === 5_000, `all or nothing (head ${JSON.stringify(head)})`);
  });

  it('an uncaught exception in the worker: waiting calls reject with the reason, later calls too, close() resolves', { timeout: 20_000 }, async (t) => {
    const store = open(t, tempFile(t));
    await store.init();
    // A message the worker cannot answer (no id) makes it throw and die, before it gets to the next request.
    sqliteStoreWorker(store)?.postMessage({ op: 'streams' });
    const pending = store.streams();
    await assert.rejects(pending, /audit store \(sqlite\): the worker thread failed: .*without an id/);
    await assert.rejects(store.query({ limit: 1 }), /worker thread failed/);
    await store.close();
  });

  it('a file that is not a database: init() rejects with the path and the reason', async (t) => {
    const file = tempFile(t);
    writeFileSync(file, 'not a database, just some text that is long enough to have a header'.repeat(20));
    const store = open(t, file);
    await assert.rejects(store.init(), (err: Error) => {
      assert.match(err.message, /cannot open the audit database .*audit\.sqlite: file is not a database/);
      return true;
    });
    await store.close();
  });

  it('close() lets queued requests finish first; calls after close() reject', async (t) => {
    const store = open(t, tempFile(t));
    const { records } = buildChain(S, 300, K, testSigner(), []);
    const appended = store.append(v1StoreRecords(records), []);
    const closed = store.close();
    await appended;
    await closed;
    await store.close();
    await assert.rejects(store.head(S), /the store is closed/);
  });

  it('stores the same column types as before the worker (existing databases keep working), in WAL mode', async (t) => {
    const file = tempFile(t);
    const store = open(t, file);
    // Subjects with non-ASCII text, a lone surrogate (stored as the same bytes better-sqlite3
    // stores for it when bound directly) and characters JSON escapes; the columns are read
    // out of each record's JSON by the worker.
    const chain = new Chain(S, 0, genesis(S).toString('hex'), new MerkleAccumulator());
    const subjects = ['é ü 漢字 \u{1F600}', 'lone \ud800 surrogate', null, 'quote " back\\slash \u0001 \u2028', ''];
    const records = subjects.map((subject, i) => {
      const b = emptyBody('exchange', new Date(1_700_000_000_000 + i).toISOString());
      b.subject = subject;
      b.decision = i === 2 ? null : 'allowed';
      return chain.seal(b, i + 1, K);
    });
    const checkpoints = [{ checkpoint: testSigner().sign({ stream: S, seq: 5, head_hash: chain.prev, merkle_root: chain.merkle.rootHex(), time: new Date().toISOString() }), frontier: chain.merkle.state() }];
    await store.append(v1StoreRecords(records), checkpoints);
    await store.close();
    const db = new Database(file, { readonly: true });
    try {
      const row = db.prepare('SELECT typeof(stream) AS a, typeof(seq) AS b, typeof(time) AS c, typeof(subject) AS d, typeof(decision) AS e, typeof(hash) AS f, typeof(data) AS g FROM audit_records ORDER BY id LIMIT 1').get();
      assert.deepEqual(row, { a: 'text', b: 'integer', c: 'text', d: 'text', e: 'text', f: 'text', g: 'text' });
      const stored = db.prepare('SELECT subject FROM audit_records ORDER BY id').pluck().all();
      assert.deepEqual([stored[0], stored[2], stored[3], stored[4]], [subjects[0], null, subjects[3], '']);
      assert.deepEqual(db.prepare('SELECT decision FROM audit_records ORDER BY id').pluck().all(), ['allowed', 'allowed', null, 'allowed', 'allowed']);
      assert.deepEqual(
        db.prepare('SELECT stream, seq, time, hash FROM audit_records ORDER BY id').all(),
        records.map((r) => ({ stream: S, seq: r.seq, time: r.time, hash: r.hash })),
      );
      const mem = new Database(':memory:');
      const direct = mem.prepare('SELECT hex(?)').pluck().get('lone \ud800 surrogate');
      mem.close();
      assert.equal(db.prepare('SELECT hex(subject) FROM audit_records WHERE seq = 2').pluck().get(), direct);
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.deepEqual(db.prepare('SELECT typeof(seq) AS s, typeof(data) AS d, typeof(frontier) AS f FROM audit_checkpoints').all(), [{ s: 'integer', d: 'text', f: 'text' }]);
      
    } finally {
      db.close();
    }
    // A store opened on that file continues it.
    const again = open(t, file);
    assert.equal((await again.head(S))?.seq, 5);
    assert.equal((await again.readRaw(S, 0, 10)).length, 5);
  });

  it('a process that used the store exits: after close(), and when it forgot close() (the idle worker does not keep it alive)', { timeout: 30_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-sqlite-exit-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const mod = fileURLToPath(new URL('./sqlite.js', import.meta.url));
    const script = (close: boolean) => `
      const { createSqliteAuditStore } = await import(${JSON.stringify(mod)});
      const s = createSqliteAuditStore(${JSON.stringify(join(dir, 'a.sqlite'))});
      await s.init();
      await s.append([], []);
      console.log(JSON.stringify(await s.streams()));
      ${close ? 'await s.close();' : ''}`;
    for (const close of [true, false]) {
      const out = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['--input-type=module', '-e', script(close)], { timeout: 15_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      });
      assert.equal(out.trim(), '[]', `close: ${close}`);
    }
  });
});
