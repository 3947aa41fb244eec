/**
 * The gateway-thread side of the audit writer's seal worker (seal-worker.ts): starts the
 * thread, hands it keys and batches, matches replies to calls.
 *
 * Failure is closed and final: a worker that throws, exits or sends an unreadable reply
 * rejects every waiting and every later call with the same error, and `onFailure` is
 * called once. The chain state lived in the thread; the writer does not guess it back
 * (sealing more records after a batch whose seal is unknown would fork the chain), so it
 * refuses records from then on (writer.ts).
 */
import { Worker } from 'node:worker_threads';
import { CanonicalWriter } from './canonical-bytes.js';
import type { MacKey } from './chain-hash.js';
import type { AuditBody, ChainFields } from './record.js';
import { SEAL_NUMS, type Frontier, type SealReply, type SealRequest } from './seal-protocol.js';
import { capacity } from './buffer-capacity.js';

/** Compiled next to this file: dist/audit/seal-worker.js. */
const WORKER_URL = new URL('./seal-worker.js', import.meta.url);

export class SealWorkerError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(`audit seal worker: ${message}`, options);
    this.name = 'SealWorkerError';
  }
}

interface Waiter {
  resolve(r: SealReply): void;
  reject(err: Error): void;
}

/** Shared buffers for one batch in flight: per record its lengths, and the canonical forms' UTF-8 (written by `out`). */
interface Slot {
  nums: Float64Array;
  out: CanonicalWriter;
}

function newSlot(): Slot {
  const out: CanonicalWriter = new CanonicalWriter(Buffer.from(new SharedArrayBuffer(1 << 20)), (need) => {
    const bigger = Buffer.from(new SharedArrayBuffer(capacity(need, 1 << 20)));
    out.buf.copy(bigger, 0, 0, out.pos);
    return bigger;
  });
  return { nums: new Float64Array(new SharedArrayBuffer(8 * SEAL_NUMS * 1024)), out };
}

const NO_RECORD = (): never => {
  throw new RangeError('a batch of no records has no record');
};

export class Sealer {
  /** The thread (tests end it to check that the writer fails closed). */
  readonly worker: Worker;
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 0;
  private failure: Error | null = null;
  private stopping = false;
  /** Reused shared buffers, one per batch in flight (two while one is sealed and the next is built). */
  private readonly slots: Slot[] = [];

  constructor(start: { seq: number; prev: string; frontier: Frontier }, onFailure: (err: Error) => void) {
    // No inherited execArgv: the parent's flags are for its entry point (as store/sqlite.ts).
    this.worker = new Worker(WORKER_URL, { execArgv: [] });
    // Idle, the thread must not keep the process alive; while a batch is out it must.
    this.worker.unref();
    const fail = (err: Error) => {
      if (this.failure !== null) return;
      this.failure = err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
      this.worker.unref();
      if (!this.stopping) onFailure(err);
    };
    this.worker.on('message', (r: SealReply) => {
      const w = this.waiting.get(r.id);
      if (w === undefined) return;
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) this.worker.unref();
      w.resolve(r);
    });
    this.worker.on('error', (err) => fail(new SealWorkerError(`the thread failed: ${err.message}`, { cause: err })));
    this.worker.on('messageerror', (err) => {
      fail(new SealWorkerError(`unreadable reply: ${err.message}`, { cause: err }));
      void this.worker.terminate();
    });
    this.worker.on('exit', (code) => fail(new SealWorkerError(`the thread exited unexpectedly (exit code ${code})`)));
    this.post({ op: 'init', seq: start.seq, prev: start.prev, frontier: start.frontier });
  }

  /** Why sealing is impossible, or null. */
  get failed(): Error | null {
    return this.failure;
  }

  /** Batches naming `kid` from now on are sealed with `key` (messages are handled in order). */
  setKey(kid: string, key: MacKey): void {
    this.post({ op: 'key', kid, ipad: new Uint8Array(key.ipad), opad: new Uint8Array(key.opad) });
  }

  /**
   * Seals records first..first+count-1 as one batch: `record(i)` is record i with its
   * chain members set (seq, stream, kid, v = 2); its canonical form is written into the
   * batch's shared buffer as UTF-8 (canonical-bytes.ts; no string is built). With none,
   * reports the chain state. `state`: the reply carries the stream's Merkle root and
   * frontier (a checkpoint ends at this batch). Throws what canonical() throws, before
   * anything is sent.
   */
  seal(first: number, kid: string, count: number, record: (i: number) => AuditBody & ChainFields, state: boolean): Promise<SealReply> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const slot = this.slots.pop() ?? newSlot();
    if (slot.nums.length < count * SEAL_NUMS) slot.nums = new Float64Array(new SharedArrayBuffer(8 * SEAL_NUMS * capacity(count, 1024)));
    const nums = slot.nums;
    const out = slot.out;
    out.pos = 0;
    try {
      for (let i = 0; i < count; i++) {
        nums[i * SEAL_NUMS] = out.write(record(i));
        nums[i * SEAL_NUMS + 1] = out.units;
      }
    } catch (err) {
      // A record without a canonical form (a field of the wrong type): the caller's to handle, synchronously.
      this.slots.push(slot);
      throw err;
    }
    const used = out.pos;
    const id = ++this.nextId;
    return new Promise<SealReply>((resolve, reject) => {
      const done = (f: () => void) => {
        // Answered: the worker is done with the buffers (a dead worker's are dropped with it).
        if (this.failure === null) this.slots.push(slot);
        f();
      };
      this.waiting.set(id, { resolve: (r) => done(() => resolve(r)), reject: (e) => done(() => reject(e)) });
      if (this.waiting.size === 1) this.worker.ref();
      try {
        this.worker.postMessage({ op: 'seal', id, first, count, kid, nums: nums.buffer as SharedArrayBuffer, text: out.buf.buffer as SharedArrayBuffer, used, state } satisfies SealRequest);
      } catch (err) {
        this.waiting.delete(id);
        if (this.waiting.size === 0) this.worker.unref();
        this.slots.push(slot);
        reject(err as Error);
      }
    });
  }

  /** The chain state after every batch sent so far, with the stream's Merkle root and frontier (a checkpoint). */
  chainState(): Promise<SealReply> {
    return this.seal(0, '', 0, NO_RECORD, true);
  }

  private post(m: SealRequest): void {
    if (this.failure !== null) return;
    this.worker.postMessage(m);
  }

  /** Ends the thread (after the writer's last batch was answered). */
  async close(): Promise<void> {
    this.stopping = true;
    await this.worker.terminate();
  }
}
