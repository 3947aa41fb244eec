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
import type { MacKey } from './chain-hash.js';
import type { Frontier, SealReply, SealRequest, SealResponse } from './seal-protocol.js';
import { packStrings } from './store/sqlite-protocol.js';

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

export class Sealer {
  /** The thread (tests end it to check that the writer fails closed). */
  readonly worker: Worker;
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 0;
  private failure: Error | null = null;
  private stopping = false;

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
    this.worker.on('message', (r: SealResponse) => {
      const w = this.waiting.get(r.id);
      if (w === undefined) return;
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) this.worker.unref();
      if ('error' in r) w.reject(new SealWorkerError(r.error));
      else w.resolve(r);
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
   * Seals `canons` (the canonical forms of seqs first.., carrying kid and v = 2) as one
   * batch; with none, reports the chain state. `state`: the reply carries the stream's
   * Merkle root and frontier (a checkpoint ends at this batch).
   */
  seal(first: number, kid: string, canons: readonly string[], state: boolean): Promise<SealReply> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = ++this.nextId;
    const p = packStrings(canons);
    return new Promise<SealReply>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (this.waiting.size === 1) this.worker.ref();
      try {
        this.worker.postMessage({ op: 'seal', id, first, kid, text: p.text, lens: p.lens, state } satisfies SealRequest, [p.lens.buffer]);
      } catch (err) {
        this.waiting.delete(id);
        if (this.waiting.size === 0) this.worker.unref();
        reject(err as Error);
      }
    });
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
