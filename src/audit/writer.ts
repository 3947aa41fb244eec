/**
 * The audit writer: one per gateway instance, writing its own stream in chain format v2
 * (v2.ts). Off the request path by batching (group commit) and by threads: the request
 * path only builds the record body (and, in async mode, takes the next seq); once per
 * flush, for the whole batch, the gateway's thread gives each record its chain members
 * (v, stream, seq, kid), builds its canonical form and hands the batch to the seal worker
 * (seal-worker.ts, through sealer.ts), which owns the chain state and does every hash —
 * leaves, the batch's Merkle root, the seal, the stream's Merkle frontier — and returns
 * the stored forms. The store write follows (SQLite: in its own worker thread). A flush
 * runs on a timer (`flush_interval`, async mode) or on the next turn of the event loop
 * (sync mode, where the response waits for it).
 *
 * Durability and failure:
 * - a batch is one store transaction; when the store refuses it, the sealed batch goes
 *   to the spool (spool.ts) and is replayed in order later: the chain never restarts;
 * - the writer never starts a new genesis: on open it reads the stream head (its chain
 *   value) from the store (open fails when the store cannot answer), after replaying any
 *   spool; a stream an older gatehouse wrote in v1 continues in v2 from its last hash;
 * - async mode: seqs are reserved in the state file before they are handed out
 *   (stream-state.ts), so a crash's loss is named by the restart record the next start
 *   writes (and by `audit verify` before that);
 * - sync mode: a seq is given to a record only when its batch goes to be sealed, and
 *   sealed records are stored (or spooled) before any answer waits on them: a crash loses
 *   no seq and the restart record declares nothing lost (docs/audit.md, "Streams, restarts
 *   and crashes");
 * - a seal worker that fails (throws, exits) fails the writer closed for good: every
 *   record waiting and every later one is refused (`unavailable` = seal_failed; the gate
 *   answers 503 audit_unavailable unless `on_failure: allow`), nothing is acknowledged that
 *   was not stored, and the dependency state goes down. The chain state lived in the worker;
 *   guessing it back could fork the chain, so only a restart (which reads the stored head)
 *   writes again.
 */
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { Logger } from '../observability/logger.js';
import { genesis } from './canonical.js';
import type { CheckpointSigner } from './checkpoint.js';
import type { Keyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import { emptyBody, type AuditBody, type ChainFields } from './record.js';
import type { SealReply } from './seal-protocol.js';
import { Sealer } from './sealer.js';
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

/**
 * A queued body. Its `seq` member (declared by emptyBody) is the record's seq in async
 * mode, taken at append; 0 in sync mode until sealing. No wrapper object per record: the
 * queue lives across event-loop turns, and every object that survives a scavenge costs.
 */
type Chained = AuditBody & ChainFields;

const sealWorkers = new WeakMap<AuditWriter, Worker>();

/** The seal worker thread of a writer (tests end it to check that the writer fails closed). */
export function auditSealWorker(w: AuditWriter): Worker | undefined {
  return sealWorkers.get(w);
}

/** A rejected promise nobody has to handle (a caller in async mode drops it). */
function refused(err: Error): Promise<void> {
  const p = Promise.reject(err);
  p.catch(() => undefined);
  return p;
}

export class AuditWriter {
  readonly stream: string;
  private readonly o: WriterOptions;
  private keyring: Keyring;
  private readonly sealer: Sealer;
  private readonly spool: Spool;
  private readonly state: StreamState;
  private readonly now: () => number;
  private nextSeq: number;
  /** The last seq handed to the seal worker. */
  private postedSeq: number;
  /** The last sealed seq and the chain value there (the head once the store has it). */
  private sealedSeq: number;
  private chainValue: string;
  /** Records waiting to be sealed; seq 0: sync mode, given at sealing. */
  private queue: Chained[] = [];
  private waiter: Deferred | null = null;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private flushing: Promise<void> | null = null;
  /** A flush sealed while the previous one's store write runs, waiting to write next (at most one). */
  private sealedNext: Promise<void> | null = null;
  private storeOk = true;
  /** Set once the seal worker failed: nothing is sealed any more. */
  private sealFailure: Error | null = null;
  private lastRetry = 0;
  private lastCpSeq: number;
  private lastCpTime: number;
  private lastCpIso: string | null;
  private closed = false;
  private cpTimer: NodeJS.Timeout | null = null;

  private constructor(o: WriterOptions, state: StreamState, head: { seq: number; chain: string; merkle: MerkleAccumulator }, spool: Spool, lastCp: StoredCheckpoint | null) {
    this.o = o;
    this.keyring = o.keyring;
    this.stream = state.stream;
    this.state = state;
    this.spool = spool;
    this.now = o.now ?? Date.now;
    this.nextSeq = head.seq + 1;
    this.postedSeq = head.seq;
    this.sealedSeq = head.seq;
    this.chainValue = head.chain;
    this.lastCpSeq = lastCp?.checkpoint.seq ?? 0;
    this.lastCpIso = lastCp?.checkpoint.time ?? null;
    this.lastCpTime = lastCp ? Date.parse(lastCp.checkpoint.time) : this.now();
    if (lastCp) o.metrics?.checkpoint(this.lastCpTime / 1000);
    this.sealer = new Sealer({ seq: head.seq, prev: head.chain, frontier: head.merkle.state() }, (err) => this.sealFailed(err));
    this.sealer.setKey(this.keyring.activeId, this.keyring.active);
    sealWorkers.set(this, this.sealer.worker);
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
    const merkle = lastCp !== null ? MerkleAccumulator.from(lastCp.frontier) : new MerkleAccumulator();
    for (const l of await o.store.leavesAfter(state.stream, lastCp?.checkpoint.seq ?? 0)) merkle.pushLeaf(l);
    const headSeq = head?.seq ?? 0;
    const w = new AuditWriter(o, state, { seq: headSeq, chain: head ? head.hash : genesis(state.stream).toString('hex'), merkle }, spool, lastCp);
    // Every start is recorded; one after a crash names the seqs that may have been lost.
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
   * Queues a record body (async mode: takes its seq now). Returns a promise that resolves
   * once the record is durable (store or spool) — awaited in sync mode only.
   */
  append(body: AuditBody): Promise<void> {
    if (this.closed) return refused(new Error('audit writer closed'));
    if (this.sealFailure !== null) return refused(this.sealFailure);
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
    const b = body as Chained;
    b.seq = seq;
    this.queue.push(b);
    this.waiter ??= deferred();
    const p = this.waiter.promise;
    if (this.o.mode === 'sync' || this.queue.length >= this.o.batchMax) this.schedule(true);
    else this.schedule(false);
    return p;
  }

  /** Rotation: batches sealed from now on use the new active key. */
  setKeyring(k: Keyring): void {
    this.keyring = k;
    // Handed to the worker before any batch that names it (messages are handled in order).
    this.sealer.setKey(k.activeId, k.active);
  }

  /** False when records cannot be kept (seal worker failed, spool or queue full): new traffic is refused unless `on_failure: allow`. */
  get available(): boolean {
    return this.unavailable === null;
  }

  /** Why records cannot be kept now, or null. */
  get unavailable(): 'seal_failed' | 'spool_full' | 'queue_full' | null {
    if (this.sealFailure !== null) return 'seal_failed';
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
      head_seq: this.sealedSeq,
      head_hash: this.chainValue,
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
    return this.queue.length > 0 && this.sealFailure === null ? p.then(() => this.flush()) : p;
  }

  private async doFlush(prev: Promise<void> | null): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    let items = this.queue;
    const waiter = this.waiter;
    // One batch is at most batch_max records: its records are held in memory until
    // written, and its sealing holds the seal worker, so neither grows with a backlog.
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
    let batch: SpoolBatch;
    try {
      batch = await this.seal(items);
    } catch (err) {
      // Not sealed, so not stored: every waiter of these records is refused.
      waiter?.reject(err as Error);
      rest?.reject(err as Error);
      return;
    }
    if (prev !== null) await prev.catch(() => undefined);
    try {
      await this.persist(batch);
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

  /**
   * The event-loop part of sealing a batch: the chain members and the canonical form of
   * each record, then one message to the seal worker; the reply's stored forms become the
   * store records. A checkpoint due at the batch's end is decided here (its seq is the
   * batch's last) and signed when the worker has answered with the seal and the Merkle root.
   */
  private async seal(items: readonly Chained[]): Promise<SpoolBatch> {
    if (this.sealFailure !== null) throw this.sealFailure;
    const n = items.length;
    const kid = this.keyring.activeId;
    let first = this.postedSeq + 1;
    if (n > 0) {
      const head = (items[0] as Chained).seq;
      first = head === 0 ? this.nextSeq : head;
      const tail = (items[n - 1] as Chained).seq;
      this.postedSeq = tail === 0 ? this.nextSeq + n - 1 : tail;
    }
    const cpTime = this.checkpointAt(this.postedSeq, false);
    if (n === 0 && cpTime === null) return { records: [], checkpoints: [] };
    let sealing: Promise<SealReply>;
    try {
      sealing = this.sealer.seal(
        first,
        kid,
        n,
        (i) => {
          const b = items[i] as Chained;
          b.v = 2;
          b.stream = this.stream;
          if (b.seq === 0) b.seq = this.nextSeq++;
          b.kid = kid;
          return b;
        },
        cpTime !== null,
      );
    } catch (err) {
      // A body without a canonical form is a bug upstream; its seqs are taken, and sealing on
      // past them would leave a gap nothing declares: stop, as when the worker fails.
      this.sealFailed(err as Error);
      throw err;
    }
    const reply = await sealing;
    this.sealedSeq = reply.seq;
    this.chainValue = reply.chain;
    return { records: storeRecords(items, reply), checkpoints: cpTime === null ? [] : [this.signCheckpoint(reply, cpTime)] };
  }

  private checkpointDue(): boolean {
    return this.o.signer !== null && this.o.checkpointIntervalMs > 0 && this.postedSeq > this.lastCpSeq && this.now() - this.lastCpTime >= this.o.checkpointIntervalMs;
  }

  /** Whether a checkpoint ends at `seq` (a batch's end); when it does, its time, and it counts as taken. */
  private checkpointAt(seq: number, force: boolean): string | null {
    if (this.o.signer === null || seq === this.lastCpSeq) return null;
    const now = this.now();
    const byCount = this.o.checkpointRecords > 0 && seq - this.lastCpSeq >= this.o.checkpointRecords;
    const byTime = this.o.checkpointIntervalMs > 0 && now - this.lastCpTime >= this.o.checkpointIntervalMs;
    if (!force && !byCount && !byTime) return null;
    const time = new Date(now).toISOString();
    this.lastCpSeq = seq;
    this.lastCpTime = now;
    this.lastCpIso = time;
    return time;
  }

  private signCheckpoint(reply: SealReply, time: string): StoredCheckpoint {
    const checkpoint = (this.o.signer as CheckpointSigner).sign({ stream: this.stream, seq: reply.seq, head_hash: reply.chain, merkle_root: reply.root as string, time });
    this.o.metrics?.checkpoint(Date.parse(time) / 1000);
    return { checkpoint, frontier: reply.frontier as StoredCheckpoint['frontier'] };
  }

  private sealFailed(err: Error): void {
    this.sealFailure = err;
    this.o.log?.error({ event: 'audit_seal_failed', stream: this.stream, err: err.message }, 'audit seal worker failed; records are refused until a restart');
    this.o.health?.down(err);
    this.o.metrics?.writeFailed();
    // Queued records will never be sealed: their waiters are refused now.
    const w = this.waiter;
    this.queue = [];
    this.waiter = null;
    w?.reject(err);
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
          this.storeUp();
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
      this.storeUp();
      this.o.metrics?.written(batch.records.length, (performance.now() - t0) / 1000);
    } catch (err) {
      this.storeDown(err);
      this.lastRetry = this.now();
      // Durable locally; if even this throws (disk full) the waiters see the error.
      this.spool.append(batch);
      this.o.metrics?.spoolBytes(this.spool.bytes);
    }
  }

  private storeUp(): void {
    this.storeOk = true;
    // A failed seal worker keeps the dependency down, whatever the store does.
    if (this.sealFailure === null) this.o.health?.up();
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
    if (this.sealFailure === null) {
      try {
        const time = this.checkpointAt(this.postedSeq, true);
        const cps = time === null ? [] : [this.signCheckpoint(await this.sealer.chainState(), time)];
        await this.persist({ records: [], checkpoints: cps });
      } catch (err) {
        this.o.log?.error({ event: 'audit_close_failed', err: String(err) }, 'audit: final checkpoint not stored');
      }
    }
    await this.sealer.close();
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    if (this.cpTimer !== null) clearInterval(this.cpTimer);
    // A clean stop hands back the unused reservation (everything handed out is sealed and in
    // the store or the spool): the next start declares no gap. After a seal worker failure
    // records handed out may be lost: the reservation stays, and the next start names them.
    if (this.sealFailure === null) this.state.reserved = this.sealedSeq;
    delete this.state.pid;
    saveStreamState(this.o.stateDir, this.state);
  }
}

/** The store records of a sealed batch: the worker's stored forms and leaves, the columns from the bodies. */
function storeRecords(items: readonly Chained[], reply: SealReply): StoreRecord[] {
  const n = items.length;
  const out = new Array<StoreRecord>(n);
  const { text, lens, leaves } = reply;
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const b = items[i] as Chained;
    const len = lens[i] as number;
    out[i] = { stream: b.stream, seq: b.seq, time: b.time, subject: b.subject, decision: b.decision, hash: leaves.slice(i * 64, i * 64 + 64), data: text.slice(pos, pos + len) };
    pos += len;
  }
  return out;
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
