/**
 * The embedded audit store: SQLite in WAL mode (better-sqlite3) in `state.dir`. Each
 * append is one transaction; `synchronous = FULL` so a committed batch survives a power
 * loss, not only a process crash (the sync mode's promise).
 *
 * better-sqlite3 is synchronous, and with FULL a commit waits for fsync: run on the
 * gateway's thread, every flush would stall every in-flight request for its insert and
 * fsync time (~9 ms for a 600-record batch), and sealing the next batch would wait for
 * the previous insert. So the connection lives in a worker thread (sqlite-worker.ts) and
 * this object only packs requests and unpacks replies (sqlite-protocol.ts): the caller's
 * thread pays one copy of the batch's strings into shared memory, the worker pays SQLite
 * and the disk.
 *
 * Reads go through the same worker: one connection, and the admin API's queries and the
 * verifier's pages do not hold the event loop either (docs/audit.md, "Stores").
 *
 * Failure is closed: a statement SQLite refuses rejects its call; a worker that dies
 * rejects every waiting and every later call (the writer spools, and the gate refuses
 * once the spool is full). `close()` lets the queued requests finish, closes the database
 * and ends the thread.
 */
import { Worker } from 'node:worker_threads';
import type { Checkpoint } from '../checkpoint.js';
import type { ChainedRecord } from '../record.js';
import { RECORD_NUMS, unpackStrings, type Reply, type RequestBody, type Results } from './sqlite-protocol.js';
import type { ArchiveAnchor, AuditStore, RecordQuery, StoreRecord, StoredCheckpoint, StreamHead } from './types.js';
import { capacity } from '../buffer-capacity.js';

/** Compiled next to this file: dist/audit/store/sqlite-worker.js. */
const WORKER_URL = new URL('./sqlite-worker.js', import.meta.url);

/** An error SQLite (or the worker) reported; `code` is SQLite's (SQLITE_BUSY, SQLITE_FULL, ...) when there is one. */
export class SqliteStoreError extends Error {
  readonly code: string | null;
  constructor(message: string, code: string | null, options?: ErrorOptions) {
    super(`audit store (sqlite): ${message}`, options);
    this.name = 'SqliteStoreError';
    this.code = code;
  }
}

const workers = new WeakMap<AuditStore, Worker>();

/** The worker thread behind a SQLite audit store (tests kill it to check that calls fail closed). */
export function sqliteStoreWorker(store: AuditStore): Worker | undefined {
  return workers.get(store);
}

/** Shared buffers for one append in flight: the numbers and the UTF-8 text of a batch. */
interface Slot {
  nums: Float64Array;
  text: Buffer;
}

function newSlot(): Slot {
  return { nums: new Float64Array(new SharedArrayBuffer(8 * RECORD_NUMS * 64)), text: Buffer.from(new SharedArrayBuffer(1 << 16)) };
}

interface Waiter {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export interface SqliteStoreOptions {
  /**
   * Verifying and exporting: the file must exist and hold the audit tables; nothing is
   * created or written (a wiped or missing store fails instead of verifying as empty).
   */
  readonly readOnly?: boolean;
}

export function createSqliteAuditStore(file: string, opts: SqliteStoreOptions = {}): AuditStore {
  // No inherited execArgv: the parent's flags (--input-type, --test, loaders for .ts
  // sources...) are for its entry point and can stop this compiled .js from starting.
  const worker = new Worker(WORKER_URL, { workerData: { file, readOnly: opts.readOnly === true }, execArgv: [] });
  const waiting = new Map<number, Waiter>();
  let nextId = 0;
  /** Set once the thread is gone: every later call rejects with it. */
  let failure: Error | null = null;
  let closing = false;
  let closed: Promise<void> | null = null;
  /** Appends issued so far: a page read ahead is used only if none was issued since. */
  let appends = 0;
  /**
   * Reused shared buffers, one per append in flight (the writer has one, two while it
   * seals the next batch). A fresh megabyte-sized buffer per batch, as a cloned string or
   * a transferred ArrayBuffer is, costs page faults on both threads every time.
   */
  const slots: Slot[] = [];
  /** The page after the last full page readRaw returned, requested before it was asked for. */
  let readAhead: { stream: string; afterId: number; limit: number; appends: number; page: Promise<Results['readRaw']> } | null = null;

  // Idle, the thread must not keep the process alive (a CLI that is done must exit even if
  // it forgot close()); while a call waits for its reply it must, or the process could
  // exit with the call unanswered.
  worker.unref();

  const fail = (err: Error) => {
    failure ??= err;
    for (const w of waiting.values()) w.reject(failure);
    waiting.clear();
    worker.unref();
  };
  worker.on('message', (r: Reply) => {
    const w = waiting.get(r.id);
    if (w === undefined) return;
    waiting.delete(r.id);
    if (waiting.size === 0) worker.unref();
    if (r.ok) w.resolve(r.value);
    else w.reject(new SqliteStoreError(r.message, r.code));
  });
  // An uncaught exception in the worker (it could not open the database, or a bug): 'exit' follows.
  worker.on('error', (err) => fail(new SqliteStoreError(`the worker thread failed: ${err.message}`, null, { cause: err })));
  worker.on('messageerror', (err) => {
    // A reply that cannot be read cannot be matched to its call: stop rather than guess.
    fail(new SqliteStoreError(`unreadable reply from the worker thread: ${err.message}`, null, { cause: err }));
    void worker.terminate();
  });
  // After a clean close nothing waits and nothing new is accepted, so this only matters
  // for a thread that ended on its own (crash, terminate from outside, out of memory).
  worker.on('exit', (code) => fail(new SqliteStoreError(`the worker thread exited unexpectedly (exit code ${code})`, null)));

  function call<K extends keyof Results>(body: RequestBody & { op: K }): Promise<Results[K]> {
    if (closing) return Promise.reject(new SqliteStoreError('the store is closed', null));
    if (failure !== null) return Promise.reject(failure);
    const id = ++nextId;
    return new Promise<Results[K]>((resolve, reject) => {
      waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      if (waiting.size === 1) worker.ref();
      try {
        worker.postMessage({ ...body, id });
      } catch (err) {
        waiting.delete(id);
        if (waiting.size === 0) worker.unref();
        reject(err as Error);
      }
    });
  }

  const store: AuditStore = {
    kind: 'sqlite',
    async init() {
      // Answered once the worker has opened the database (and, unless read-only, created
      // the tables: the embedded store's file belongs to the gateway, there is no separate owner).
      await call({ op: 'ping' });
    },
    async migrate() {
      if (opts.readOnly === true) throw new SqliteStoreError('a read-only store cannot be migrated', null);
      await call({ op: 'ping' });
    },
    async append(records, cps) {
      // Only the stored form and the seq, written into shared buffers (the worker reads the
      // other columns out of the stored form): one string to copy per record.
      const n = records.length;
      const slot = slots.pop() ?? newSlot();
      if (slot.nums.length < n * RECORD_NUMS) slot.nums = new Float64Array(new SharedArrayBuffer(8 * RECORD_NUMS * capacity(n, 64)));
      const nums = slot.nums;
      let used = 0;
      try {
        for (let i = 0; i < n; i++) {
          const r = records[i] as StoreRecord;
          // JSON (JSON.stringify and the canonical form escape lone surrogates): always
          // well-formed, so UTF-8 carries it unchanged.
          const data = r.data;
          // Room for the worst case (3 bytes per UTF-16 unit) before writing: never a partial string.
          if (used + 3 * data.length > slot.text.length) {
            const bigger = Buffer.from(new SharedArrayBuffer(capacity(used + 3 * data.length, 1 << 16)));
            slot.text.copy(bigger, 0, 0, used);
            slot.text = bigger;
          }
          const k = slot.text.write(data, used, 'utf8');
          used += k;
          nums[i * RECORD_NUMS] = r.seq;
          nums[i * RECORD_NUMS + 1] = k;
        }
      } catch (err) {
        slots.push(slot);
        throw err;
      }
      const flat: Array<string | number> = [];
      for (const c of cps as readonly StoredCheckpoint[]) flat.push(c.checkpoint.stream, c.checkpoint.seq, JSON.stringify(c.checkpoint), JSON.stringify(c.frontier));
      // A page read ahead before this append might miss its rows: a caller that reads after
      // its own append must see them.
      appends++;
      readAhead = null;
      try {
        await call({ op: 'append', batch: { count: n, nums: nums.buffer as SharedArrayBuffer, text: slot.text.buffer as SharedArrayBuffer, used, cps: flat } });
      } finally {
        // Answered: the worker is done with the buffers (a dead worker's are dropped with it).
        if (failure === null) slots.push(slot);
      }
    },
    async head(stream) {
      const row = await call({ op: 'head', stream });
      return row ? ({ seq: row.seq, hash: row.hash } satisfies StreamHead) : null;
    },
    async lastCheckpoint(stream) {
      const row = await call({ op: 'lastCheckpoint', stream });
      return row ? { checkpoint: JSON.parse(row.data) as Checkpoint, frontier: JSON.parse(row.frontier) as StoredCheckpoint['frontier'] } : null;
    },
    async leavesAfter(stream, after) {
      return unpackStrings(await call({ op: 'leavesAfter', stream, after })) as string[];
    },
    async streams() {
      return call({ op: 'streams' });
    },
    async readRaw(stream, afterId, limit) {
      let page: Promise<Results['readRaw']>;
      const ahead = readAhead;
      readAhead = null;
      if (ahead !== null && ahead.stream === stream && ahead.afterId === afterId && ahead.limit === limit && ahead.appends === appends) page = ahead.page;
      else page = call({ op: 'readRaw', stream, afterId, limit });
      const p = await page;
      const n = p.ids.length;
      if (n === limit && n > 0) {
        // A full page: the caller (the verifier, an export) most likely wants the next one
        // and will spend far longer on this one than the worker needs to read it.
        const next = p.ids[n - 1] as number;
        readAhead = { stream, afterId: next, limit, appends, page: call({ op: 'readRaw', stream, afterId: next, limit }) };
        // Never awaited when the caller stops here: its failure is the next call's, not an unhandled rejection.
        readAhead.page.catch(() => undefined);
      }
      const data = unpackStrings(p);
      const rows = new Array<{ id: number; data: string }>(n);
      for (let i = 0; i < n; i++) rows[i] = { id: p.ids[i] as number, data: data[i] as string };
      return rows;
    },
    async checkpoints(stream) {
      return unpackStrings(await call({ op: 'checkpoints', stream })).map((d) => JSON.parse(d as string) as Checkpoint);
    },
    async query(q: RecordQuery) {
      // Copied member by member: only these cross to the worker, whatever else the object carries.
      const sent: RecordQuery = { from: q.from, to: q.to, subject: q.subject, decision: q.decision, stream: q.stream, limit: q.limit };
      return unpackStrings(await call({ op: 'query', q: sent })).map((d) => JSON.parse(d as string) as ChainedRecord);
    },
    async addArchiveAnchor(a) {
      await call({ op: 'addAnchor', stream: a.stream, seq: a.seq, data: JSON.stringify(a) });
    },
    async archiveAnchors(stream) {
      return unpackStrings(await call({ op: 'anchors', stream })).map((d) => JSON.parse(d as string) as ArchiveAnchor);
    },
    async prune(stream, seq) {
      // Rows are gone: a page read ahead before this may hold them.
      appends++;
      readAhead = null;
      return call({ op: 'prune', stream, seq });
    },
    async prunedTo(stream) {
      const d = await call({ op: 'prunedTo', stream });
      return d === null ? null : (JSON.parse(d) as ArchiveAnchor);
    },
    close() {
      closed ??= (async () => {
        readAhead = null;
        let err: unknown = null;
        if (failure === null) {
          // Queued after every earlier request: they finish first, then the database closes.
          const done = call({ op: 'close' });
          closing = true;
          try {
            await done;
          } catch (e) {
            // A thread that died meanwhile has nothing left to close; a refused close is reported.
            if (e !== failure) err = e;
          }
        }
        closing = true;
        await worker.terminate();
        if (err !== null) throw err;
      })();
      return closed;
    },
  };
  workers.set(store, worker);
  return store;
}
