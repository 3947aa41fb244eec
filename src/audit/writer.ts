/**
 * The audit writer: one per gateway instance, writing its own stream. Off the request
 * path by batching (group commit): the request path only builds the record body and
 * takes the next seq; sealing (canonical form, HMAC, hash, Merkle) and the store write
 * happen once per flush for the whole batch, on a timer (`flush_interval`, async mode)
 * or on the next turn of the event loop (sync mode, where the response waits for it).
 *
 * Durability and failure:
 * - a batch is one store transaction; when the store refuses it, the sealed batch goes
 *   to the spool (spool.ts) and is replayed in order later: the chain never restarts;
 * - the writer never starts a new genesis: on open it reads the stream head from the
 *   store (open fails when the store cannot answer), after replaying any spool;
 * - async mode: seqs are reserved in the state file before they are handed out
 *   (stream-state.ts), so a crash's loss is named by the restart record the next start
 *   writes (and by `audit verify` before that);
 * - sync mode: a seq is given to a record only when it is sealed, and sealed records are
 *   stored (or spooled) before any answer waits on them: a crash loses no seq and the
 *   restart record declares nothing lost (docs/audit.md, "Streams, restarts and crashes").
 */
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';
import { genesis } from './canonical.js';
import { Chain, v1StoreRecord } from './chain.js';
import type { CheckpointSigner } from './checkpoint.js';
import type { Keyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import { emptyBody, type AuditBody } from './record.js';
import { Spool, type SpoolBatch } from './spool.js';
import type { AuditStore, StoreRecord, StoredCheckpoint } from './store/types.js';
import { loadStreamState, saveStreamState, type StreamState } from './stream-state.js';

export interface WriterMetrics {
  written(n: number, seconds: number): void;
  spoolBytes(n: number): void;
  checkpoint(epochSeconds: number): void;
  writeFailed(): void;
}

export interface WriterOptions {
  readonly store: AuditStore;
  readonly keyring: Keyring;
  readonly signer: CheckpointSigner | null;
  readonly stateDir: string;
  readonly stream?: string;
  readonly instance: string | null;
  readonly mode: 'sync' | 'async';
  readonly flushIntervalMs: number;
  readonly batchMax: number;
  /** Checkpoint after this many records (0 = not by count). */
  readonly checkpointRecords: number;
  /** Checkpoint when this much time passed since the last one and records were added (0 = not by time). */
  readonly checkpointIntervalMs: number;
  readonly spoolLimitBytes: number;
  /**
   * Most records waiting to be sealed and written (a store slower than the traffic); beyond
   * it the writer is unavailable like with a full spool. Default: unbounded (tests, tools).
   */
  readonly queueLimit?: number;
  /** How long to wait between replay attempts while the store is down. */
  readonly retryMs?: number;
  readonly metrics?: WriterMetrics | null;
  readonly log?: Logger | null;
  /** Dependency state of the audit store (`audit_store`): down when a write fails, up when one succeeds. */
  readonly health?: { up(): void; down(err?: unknown): void } | null;
  readonly now?: () => number;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  // A waiter may never be awaited (async mode); an unhandled rejection must not crash.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

export interface WriterStatus {
  stream: string;
  mode: 'sync' | 'async';
  head_seq: number;
  head_hash: string;
  next_seq: number;
  queued: number;
  store_ok: boolean;
  spool_bytes: number;
  spool_limit_bytes: number;
  last_checkpoint_seq: number;
  last_checkpoint_time: string | null;
}

/** How many seqs one reservation covers (one fsync of the state file per block). */
const RESERVE_BLOCK = 4096;

export class AuditWriter {
  readonly stream: string;
  private readonly o: WriterOptions;
  private keyring: Keyring;
  private readonly chain: Chain;
  private readonly spool: Spool;
  private readonly state: StreamState;
  private readonly now: () => number;
  private nextSeq: number;
  /** Records waiting to be sealed; seq 0: sync mode, given at sealing. */
  private queue: Array<{ body: AuditBody; seq: number }> = [];
  private waiter: Deferred | null = null;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private flushing: Promise<void> | null = null;
  /** A flush sealed while the previous one's store write runs, waiting to write next (at most one). */
  private sealedNext: Promise<void> | null = null;
  private storeOk = true;
  private lastRetry = 0;
  private lastCpSeq: number;
  private lastCpTime: number;
  private lastCpIso: string | null;
  private closed = false;
  private cpTimer: NodeJS.Timeout | null = null;

  private constructor(o: WriterOptions, state: StreamState, chain: Chain, spool: Spool, lastCp: StoredCheckpoint | null) {
    this.o = o;
    this.keyring = o.keyring;
    this.stream = state.stream;
    this.state = state;
    this.chain = chain;
    this.spool = spool;
    this.now = o.now ?? Date.now;
    this.nextSeq = chain.seq + 1;
    this.lastCpSeq = lastCp?.checkpoint.seq ?? 0;
    this.lastCpIso = lastCp?.checkpoint.time ?? null;
    this.lastCpTime = lastCp ? Date.parse(lastCp.checkpoint.time) : this.now();
    if (lastCp) o.metrics?.checkpoint(this.lastCpTime / 1000);
    if (o.signer !== null && o.checkpointIntervalMs > 0) {
      // A quiet stream still gets its checkpoint on time: the tail a third party cannot
      // check is never older than checkpoint_interval.
      this.cpTimer = setInterval(() => void this.flush(), Math.min(o.checkpointIntervalMs, 1000));
      this.cpTimer.unref();
    }
  }

  /** Opens the instance's stream: replays a spool left by an earlier run, then continues from the stored head. */
  static async open(o: WriterOptions): Promise<AuditWriter> {
    const state = loadStreamState(o.stateDir, o.stream);
    const spool = new Spool(join(o.stateDir, `audit-spool-${state.stream}.jsonl`));
    await o.store.init();
    if (!spool.empty) {
      await replay(o.store, state.stream, spool);
      o.log?.info({ event: 'audit_spool_replayed', stream: state.stream }, 'audit spool replayed');
    }
    const head = await o.store.head(state.stream);
    const lastCp = await o.store.lastCheckpoint(state.stream);
    let merkle: MerkleAccumulator;
    if (lastCp !== null) {
      merkle = MerkleAccumulator.from(lastCp.frontier);
      for (const h of await o.store.leavesAfter(state.stream, lastCp.checkpoint.seq)) merkle.pushLeaf(h);
    } else {
      merkle = new MerkleAccumulator();
      for (const h of await o.store.leavesAfter(state.stream, 0)) merkle.pushLeaf(h);
    }
    const chain = new Chain(state.stream, head?.seq ?? 0, head ? head.hash : genesis(state.stream).toString('hex'), merkle);
    const w = new AuditWriter(o, state, chain, spool, lastCp);
    // Every start is recorded; one after a crash names the seqs that may have been lost.
    const headSeq = chain.seq;
    const restart = emptyBody('restart', new Date(w.now()).toISOString());
    restart.instance = o.instance;
    restart.count = 0;
    if (state.reserved > headSeq) {
      restart.count = state.reserved - headSeq;
      restart.lost_to = state.reserved;
      w.nextSeq = state.reserved + 1;
      o.log?.warn({ event: 'audit_gap', stream: state.stream, from: headSeq + 1, to: state.reserved }, 'audit: seqs reserved before a crash were never stored; the restart record names the gap');
    }
    // From here on the reservation is this process': `audit verify` names a window it left
    // behind only once the process is gone.
    state.reserved = w.nextSeq - 1;
    state.pid = process.pid;
    saveStreamState(o.stateDir, state);
    w.append(restart);
    return w;
  }

  /**
   * Takes the next seq for a record body and queues it. Returns a promise that resolves
   * once the record is durable (store or spool) — awaited in sync mode only.
   */
  append(body: AuditBody): Promise<void> {
    if (this.closed) return Promise.reject(new Error('audit writer closed'));
    let seq = 0;
    if (this.o.mode === 'async') {
      // The record is acknowledged before it is durable: its seq is taken (and reserved)
      // now, so that a crash's loss is a named range.
      seq = this.nextSeq++;
      if (seq > this.state.reserved) {
        this.state.reserved = seq + RESERVE_BLOCK - 1;
        saveStreamState(this.o.stateDir, this.state);
      }
    }
    this.queue.push({ body, seq });
    this.waiter ??= deferred();
    const p = this.waiter.promise;
    if (this.o.mode === 'sync' || this.queue.length >= this.o.batchMax) this.schedule(true);
    else this.schedule(false);
    return p;
  }

  /** Rotation: records sealed from now on use the new active key. */
  setKeyring(k: Keyring): void {
    this.keyring = k;
  }

  /** False when records cannot be kept (spool or queue full): new traffic is refused unless `on_failure: allow`. */
  get available(): boolean {
    return this.unavailable === null;
  }

  /** Why records cannot be kept now, or null. */
  get unavailable(): 'spool_full' | 'queue_full' | null {
    if (this.spool.bytes >= this.o.spoolLimitBytes) return 'spool_full';
    if (this.queue.length >= (this.o.queueLimit ?? Infinity)) return 'queue_full';
    return null;
  }

  get storeHealthy(): boolean {
    return this.storeOk;
  }

  status(): WriterStatus {
    return {
      stream: this.stream,
      mode: this.o.mode,
      head_seq: this.chain.seq,
      head_hash: this.chain.prev,
      next_seq: this.nextSeq,
      queued: this.queue.length,
      store_ok: this.storeOk,
      spool_bytes: this.spool.bytes,
      spool_limit_bytes: this.o.spoolLimitBytes,
      last_checkpoint_seq: this.lastCpSeq,
      last_checkpoint_time: this.lastCpIso,
    };
  }

  private schedule(now: boolean): void {
    if (now) {
      if (this.immediate === null) {
        this.immediate = setImmediate(() => {
          this.immediate = null;
          void this.flush();
        });
      }
      return;
    }
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush();
      }, this.o.flushIntervalMs);
      this.timer.unref();
    }
  }

  /**
   * Seals and persists everything queued so far. Sealing is in call order (one chain); the
   * store writes follow one another in the same order. One batch may be sealed while the
   * previous one is still being written (a store that writes off the event loop, as SQLite
   * does, then overlaps the two); beyond that, records wait in the queue and go into one
   * batch (group commit), rather than one transaction each.
   */
  flush(): Promise<void> {
    if (this.sealedNext !== null) {
      // Chain behind the waiting flush so the caller's records are covered too.
      return this.sealedNext.then(() => this.flush());
    }
    if (this.queue.length === 0 && this.spool.empty && !this.checkpointDue()) return this.flushing ?? Promise.resolve();
    const prev = this.flushing;
    const p: Promise<void> = this.doFlush(prev).finally(() => {
      if (this.flushing === p) this.flushing = null;
      if (this.sealedNext === p) this.sealedNext = null;
    });
    this.flushing = p;
    if (prev !== null) this.sealedNext = p;
    // More than one batch was queued: the caller asked for all of it.
    return this.queue.length > 0 ? p.then(() => this.flush()) : p;
  }

  private async doFlush(prev: Promise<void> | null): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    let items = this.queue;
    const waiter = this.waiter;
    // One batch is at most batch_max records: its sealing holds the event loop and its
    // records are held in memory until written, so neither grows with a backlog.
    let rest: Deferred | null = null;
    if (items.length > this.o.batchMax) {
      this.queue = items.slice(this.o.batchMax);
      items = items.slice(0, this.o.batchMax);
      // The records left behind get a waiter of their own; whoever holds the shared one
      // (any record of either part) is released once both parts are durable.
      rest = deferred();
      this.waiter = rest;
      this.schedule(true);
    } else {
      this.queue = [];
      this.waiter = null;
    }
    const records: StoreRecord[] = new Array<StoreRecord>(items.length);
    for (let i = 0; i < items.length; i++) {
      const it = items[i] as { body: AuditBody; seq: number };
      records[i] = v1StoreRecord(this.chain.seal(it.body, it.seq === 0 ? this.nextSeq++ : it.seq, this.keyring));
    }
    const cps = this.maybeCheckpoint(false);
    if (prev !== null) await prev.catch(() => undefined);
    try {
      await this.persist({ records, checkpoints: cps });
      if (rest !== null) rest.promise.then(() => waiter?.resolve(), (err: Error) => waiter?.reject(err));
      else waiter?.resolve();
    } catch (err) {
      waiter?.reject(err as Error);
    }
    if (!this.spool.empty && this.timer === null && !this.closed) {
      // Keep trying to drain the spool while the store is down, even without traffic.
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush();
      }, this.o.retryMs ?? 1000);
      this.timer.unref();
    }
  }

  private checkpointDue(): boolean {
    return this.o.signer !== null && this.o.checkpointIntervalMs > 0 && this.chain.seq > this.lastCpSeq && this.now() - this.lastCpTime >= this.o.checkpointIntervalMs;
  }

  private maybeCheckpoint(force: boolean): StoredCheckpoint[] {
    const signer = this.o.signer;
    if (signer === null || this.chain.seq === this.lastCpSeq) return [];
    const now = this.now();
    const byCount = this.o.checkpointRecords > 0 && this.chain.seq - this.lastCpSeq >= this.o.checkpointRecords;
    const byTime = this.o.checkpointIntervalMs > 0 && now - this.lastCpTime >= this.o.checkpointIntervalMs;
    if (!force && !byCount && !byTime) return [];
    const time = new Date(now).toISOString();
    const checkpoint = signer.sign({ stream: this.stream, seq: this.chain.seq, head_hash: this.chain.prev, merkle_root: this.chain.merkle.root().toString('hex'), time });
    this.lastCpSeq = this.chain.seq;
    this.lastCpTime = now;
    this.lastCpIso = time;
    this.o.metrics?.checkpoint(now / 1000);
    return [{ checkpoint, frontier: this.chain.merkle.state() }];
  }

  private async persist(batch: SpoolBatch): Promise<void> {
    if (batch.records.length === 0 && batch.checkpoints.length === 0 && this.spool.empty) return;
    const t0 = performance.now();
    if (!this.spool.empty) {
      const due = this.now() - this.lastRetry >= (this.o.retryMs ?? 1000) || this.closed;
      if (due) {
        this.lastRetry = this.now();
        try {
          await replay(this.o.store, this.stream, this.spool);
          this.storeOk = true;
          this.o.health?.up();
          this.o.metrics?.spoolBytes(0);
          this.o.log?.info({ event: 'audit_spool_replayed', stream: this.stream }, 'audit store reachable again; spool replayed');
        } catch (err) {
          this.storeDown(err);
        }
      }
      if (!this.spool.empty) {
        if (batch.records.length > 0 || batch.checkpoints.length > 0) this.spool.append(batch);
        this.o.metrics?.spoolBytes(this.spool.bytes);
        return;
      }
    }
    if (batch.records.length === 0 && batch.checkpoints.length === 0) return;
    try {
      await this.o.store.append(batch.records, batch.checkpoints);
      this.storeOk = true;
      this.o.health?.up();
      this.o.metrics?.written(batch.records.length, (performance.now() - t0) / 1000);
    } catch (err) {
      this.storeDown(err);
      this.lastRetry = this.now();
      // Durable locally; if even this throws (disk full) the waiters see the error.
      this.spool.append(batch);
      this.o.metrics?.spoolBytes(this.spool.bytes);
    }
  }

  private storeDown(err: unknown): void {
    // With a dependency state, the outage is its one dependency_down line (audit_store).
    if (this.storeOk && !this.o.health) this.o.log?.error({ event: 'audit_store_failed', stream: this.stream, err: String((err as Error)?.message ?? err) }, 'audit store write failed; spooling locally');
    this.storeOk = false;
    this.o.health?.down(err);
    this.o.metrics?.writeFailed();
  }

  /** Flushes, writes a final checkpoint over the head, and stops. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    const cps = this.maybeCheckpoint(true);
    try {
      await this.persist({ records: [], checkpoints: cps });
    } catch (err) {
      this.o.log?.error({ event: 'audit_close_failed', err: String(err) }, 'audit: final checkpoint not stored');
    }
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    if (this.cpTimer !== null) clearInterval(this.cpTimer);
    // A clean stop hands back the unused reservation (everything handed out is sealed and in
    // the store or the spool): the next start declares no gap.
    this.state.reserved = this.chain.seq;
    delete this.state.pid;
    saveStreamState(this.o.stateDir, this.state);
  }
}

/** Replays a spool into the store in order; records the store already has (a replay cut short) are skipped. */
async function replay(store: AuditStore, stream: string, spool: Spool): Promise<void> {
  const head = await store.head(stream);
  const last = await store.lastCheckpoint(stream);
  let headSeq = head?.seq ?? 0;
  let cpSeq = last?.checkpoint.seq ?? 0;
  for (const b of spool.read()) {
    const records = b.records.filter((r) => r.seq > headSeq);
    const cps = b.checkpoints.filter((c) => c.checkpoint.seq > cpSeq);
    if (records.length === 0 && cps.length === 0) continue;
    await store.append(records, cps);
    if (records.length > 0) headSeq = (records[records.length - 1] as StoreRecord).seq;
    if (cps.length > 0) cpSeq = (cps[cps.length - 1] as StoredCheckpoint).checkpoint.seq;
  }
  spool.clear();
}
