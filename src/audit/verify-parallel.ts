/**
 * Parallel verification of v2 streams (docs/audit.md, "Verifying"): a stream is split into
 * ranges — a store's by row id, an export's by byte offset at line boundaries — and worker
 * threads (verify-worker.ts) read and check the ranges optimistically (verify-range.ts),
 * each with its own connection or file handle. This thread chains them in storage order:
 * the batch a range begins in is completed with the previous range's open records and
 * sealed over the previous range's last seal, the ranges' Merkle subtrees extend the
 * stream's frontier, and every checkpoint's head and root are compared.
 *
 * It only ever says "no problem": on anything unexpected in any range — a v1 record, a seq
 * out of line, a leaf or seal that does not match, a bad checkpoint, a read error — it
 * returns null and the caller verifies the stream sequentially (verify.ts), so every
 * report that names a problem is the sequential verifier's, word for word. What it accepts
 * the sequential verifier accepts too: the same rows in the same order, the same checks.
 *
 * Memory: at most two ranges per worker are in flight and a range's result is its
 * subtrees, seals and the leaves of the batches cut at its ends — not its records.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { Checkpoint } from './checkpoint.js';
import { verifyCheckpoint } from './checkpoint.js';
import { genesis } from './canonical.js';
import type { Keyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import type { Config } from '../config/schema.js';
import { createPostgresClient, stateDir } from '../stores/postgres-client.js';
import { verifyExport, verifyStore, type KnownStreams } from './sources.js';
import type { AuditStore } from './store/types.js';
import type { RangeSource, RangeTask, WorkerInit } from './verify-parallel-protocol.js';
import type { MerklePiece, PartialBatch, RangeResult } from './verify-range.js';
import { isStoredV2, node2, rootOfLeaves, sealOf } from './v2.js';
import type { StreamReport, VerifyOptions } from './verify.js';

const WORKER_URL = new URL('./verify-worker.js', import.meta.url);

export interface ParallelOptions {
  /** Worker threads (default: the machine's available parallelism, at least 1). */
  readonly workers?: number;
  /** Records per range, about (default 16384). */
  readonly rangeRecords?: number;
  /** Told why a stream (or, with `stream` null, a whole export) is verified sequentially. */
  readonly onSequential?: (stream: string | null, why: string) => void;
}

/** A store the workers read (SQLite file, PostgreSQL connection settings). */
export type StoreSource = Exclude<RangeSource, { kind: 'export' }>;

/** A range of a stream as the source addresses it (see RangeTask). */
export interface Range {
  readonly lo: number;
  readonly hi: number | null;
}

/** A pool of workers reading one source. */
export class ParallelVerifier {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, (r: RangeResult) => void>();
  private nextId = 1;
  private failure: Error | null = null;

  constructor(
    readonly source: RangeSource,
    private readonly keyring: Keyring | null,
    readonly opts: ParallelOptions = {},
  ) {
    const n = Math.max(1, opts.workers ?? availableParallelism());
    const keys = keyring === null ? null : keyring.ids().map((id): [string, Uint8Array, Uint8Array] => {
      const k = keyring.get(id) as { ipad: Buffer; opad: Buffer };
      return [id, new Uint8Array(k.ipad), new Uint8Array(k.opad)];
    });
    const init: WorkerInit = { source, keys };
    for (let i = 0; i < n; i++) {
      // No inherited execArgv (the parent's test or loader flags), as the SQLite store's worker.
      const w = new Worker(WORKER_URL, { workerData: init, execArgv: [] });
      w.on('message', (m: { id: number; result: RangeResult }) => {
        const done = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        done?.(m.result);
      });
      w.on('error', (err) => this.fail(err));
      w.on('exit', () => this.fail(new Error('a verifier worker exited')));
      this.workers.push(w);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Every waiting range gives up: the caller falls back to the sequential verifier. */
  private fail(err: Error): void {
    if (this.failure === null) this.failure = err;
    for (const done of this.waiting.values()) done({ ok: false, why: err.message });
    this.waiting.clear();
  }

  private run(worker: number, task: Omit<RangeTask, 'id'>): Promise<RangeResult> {
    if (this.failure !== null) return Promise.resolve({ ok: false, why: this.failure.message });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      (this.workers[worker] as Worker).postMessage({ ...task, id });
    });
  }

  /**
   * Verifies one stream read as `ranges` (in storage order, together every row of the
   * stream). Returns its report when the stream has no problem, else null.
   */
  async verifyStream(stream: string, ranges: readonly Range[], checkpoints: readonly Checkpoint[], opts: VerifyOptions = {}): Promise<StreamReport | null> {
    const keyring = opts.keyring ?? null;
    const pub = opts.publicKey ?? null;
    if ((keyring === null) !== (this.keyring === null)) throw new Error('the parallel verifier was created with another keyring');
    const cps: Checkpoint[] = [];
    let latest = 0;
    for (const c of checkpoints) {
      if (c.stream !== stream) continue;
      if (pub !== null && !verifyCheckpoint(c, pub)) {
        this.opts.onSequential?.(stream, `the checkpoint at seq ${c.seq} does not verify`);
        return null;
      }
      cps.push(c);
      if (c.seq > latest) latest = c.seq;
    }
    cps.sort((a, b) => a.seq - b.seq);
    const bySeq = new Map<number, Checkpoint[]>();
    for (const c of cps) bySeq.set(c.seq, [...(bySeq.get(c.seq) ?? []), c]);

    const from = opts.from ?? null;
    let expected = 1;
    let chain = genesis(stream).toString('hex');
    let frontier = { size: 0, stack: [] as Array<string | null> };
    if (from !== null) {
      expected = from.seq + 1;
      chain = from.hash;
      frontier = { size: from.frontier.size, stack: [...from.frontier.stack] };
      const cp = bySeq.get(from.seq)?.[0];
      if (cp === undefined || frontier.size !== from.seq || cp.head_hash !== from.hash || cp.merkle_root !== MerkleAccumulator.from(frontier).rootHex()) {
        this.opts.onSequential?.(stream, `no checkpoint vouches for the start at seq ${from.seq}`);
        return null;
      }
    }
    const seqOffset = expected - frontier.size;
    const cpSeqs = [...bySeq.keys()].filter((s) => s >= expected);
    // A batch begun in an earlier range and not yet sealed: its first seq, key, leaves and chain value before it.
    let open: { first: number; kid: string; leaves: string; prev: string } | null = null;
    let records = 0;

    let why = '';
    const seal = (b: PartialBatch): boolean => {
      const leaves = open === null ? b.leaves : open.leaves + b.leaves;
      const first = open === null ? b.from : open.first;
      const prev = open === null ? chain : open.prev;
      if ((open !== null && open.kid !== b.kid) || b.sealFirst !== first) return false;
      if (keyring !== null) {
        const key = keyring.get(b.kid);
        if (key === undefined || sealOf(key, prev, first, b.to, rootOfLeaves(split(leaves))) !== b.seal) return false;
      }
      open = null;
      chain = b.seal as string;
      return true;
    };

    const take = (r: RangeResult): boolean => {
      if (!r.ok) {
        why = r.why;
        return false;
      }
      if (r.records === 0) return true;
      why = `a range begins at seq ${r.firstSeq}, not ${expected}`;
      if (r.firstSeq !== expected) return false;
      why = 'a batch across ranges, a checkpoint or a seal does not hold';
      const seals = new Map(r.cpSeals);
      if (r.head !== null) {
        if (!seal(r.head)) return false;
        if (r.lastSeal !== null) chain = r.lastSeal;
        if (r.tail !== null) open = { first: r.tail.from, kid: r.tail.kid, leaves: r.tail.leaves, prev: chain };
      } else {
        const t = r.tail as PartialBatch;
        if (open === null) open = { first: t.from, kid: t.kid, leaves: t.leaves, prev: chain };
        else if (open.kid !== t.kid) return false;
        else open.leaves += t.leaves;
      }
      for (const p of r.pieces) {
        extend(frontier, p);
        const at = bySeq.get(p.upTo);
        if (at === undefined) continue;
        const root = MerkleAccumulator.from(frontier).rootHex();
        for (const c of at) if (c.head_hash !== seals.get(p.upTo) || c.merkle_root !== root) return false;
      }
      records += r.records;
      expected = r.lastSeq + 1;
      return true;
    };

    // Two ranges in flight per worker, round robin; results taken in range order.
    const inflight: Array<Promise<RangeResult>> = [];
    let sent = 0;
    const send = () => {
      const g = ranges[sent] as Range;
      inflight.push(this.run(sent % this.workers.length, { stream, lo: g.lo, hi: g.hi, seqOffset, cpSeqs }));
      sent++;
    };
    let good = true;
    for (let k = 0; k < ranges.length; k++) {
      while (sent < ranges.length && sent < k + 2 * this.workers.length) send();
      const r = await (inflight.shift() as Promise<RangeResult>);
      if (good && !take(r)) good = false;
      if (!good) {
        // Let what is in flight finish (the workers stay usable), then give up.
        await Promise.all(inflight);
        this.opts.onSequential?.(stream, why);
        return null;
      }
    }
    if (open !== null || records === 0 || latest >= expected) {
      this.opts.onSequential?.(stream, open !== null ? 'records after the last seal' : records === 0 ? 'no records' : 'a checkpoint beyond the last record');
      return null;
    }
    const lastSeq = expected - 1;
    return {
      stream,
      records,
      lastSeq,
      checkpoints: checkpoints.length,
      latestCheckpointSeq: latest,
      problems: [],
      macsChecked: keyring !== null,
      signaturesChecked: pub !== null,
      end: { seq: lastSeq, hash: chain, frontier: { size: frontier.size, stack: [...frontier.stack] } },
    };
  }

  /** Ends the workers (their connections and files closed). */
  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.removeAllListeners('exit');
            w.once('exit', () => resolve());
            w.postMessage({ close: true });
          }),
      ),
    );
  }
}

/** Hex leaves concatenated → one string each. */
function split(leaves: string): string[] {
  const out = new Array<string>(leaves.length / 64);
  for (let i = 0; i < out.length; i++) out[i] = leaves.slice(i * 64, i * 64 + 64);
  return out;
}

/** Extends a Merkle frontier (MerkleAccumulator's state) by complete subtrees at aligned positions. */
function extend(f: { size: number; stack: Array<string | null> }, piece: MerklePiece): void {
  for (const [level, root] of piece.subtrees) {
    // An aligned subtree of 2^level leaves: the frontier holds nothing below that level.
    while (f.stack.length < level) f.stack.push(null);
    let h = root;
    let i = level;
    while (i < f.stack.length && f.stack[i] !== null) {
      h = node2(f.stack[i] as string, h);
      f.stack[i] = null;
      i++;
    }
    if (i === f.stack.length) f.stack.push(h);
    else f.stack[i] = h;
    f.size += 2 ** level;
  }
}

/** A SQLite store's ranges: the whole table by row id, `per` ids each (the rows of other streams are skipped by the workers). */
export function sqliteRanges(file: string, per: number): Range[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT min(id) AS lo, max(id) AS hi FROM audit_records').get() as { lo: number | null; hi: number | null };
    return idRanges(row.lo, row.hi, per);
  } finally {
    db.close();
  }
}

/** A PostgreSQL stream's ranges by row id, between its first and last row. */
export async function postgresRanges(source: Extract<RangeSource, { kind: 'postgres' }>, stream: string, per: number): Promise<Range[]> {
  const sql = createPostgresClient(source.config, source.configDir, { max: 1, ca: source.ca });
  try {
    const [row] = await sql<Array<{ lo: string | null; hi: string | null }>>`SELECT min(id) AS lo, max(id) AS hi FROM ${sql(`${source.config.schema}.audit_records`)} WHERE stream = ${stream}`;
    return idRanges(row?.lo == null ? null : Number(row.lo), row?.hi == null ? null : Number(row.hi), per);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Ranges lo < id ≤ hi covering every id the sequential reader reads (id > 0): the first from 0, the last open-ended. */
function idRanges(min: number | null, max: number | null, per: number): Range[] {
  if (min === null || max === null) return [{ lo: 0, hi: null }];
  const out: Range[] = [];
  let lo = 0;
  for (let hi = Math.max(min - 1, 0) + per; hi < max; hi += per) {
    out.push({ lo, hi });
    lo = hi;
  }
  out.push({ lo, hi: null });
  return out;
}

/** Where the parallel verifier's workers read the configured store from (what openAuditStore opens). */
export function storeSource(config: Config, configDir: string): StoreSource {
  if (config.audit.store === 'postgres') {
    const pg = config.state.postgres;
    if (!pg) throw new Error('audit.store is postgres but state.postgres is missing');
    return { kind: 'postgres', config: pg, configDir, ca: config.ca };
  }
  return { kind: 'sqlite', file: join(stateDir(config.state.dir, configDir), 'audit.sqlite') };
}

const DEFAULT_RANGE = 16384;

/**
 * verifyStore (sources.ts) with each stream verified in parallel first: a stream with a
 * problem, or one the parallel path cannot take (v1 records, a declared gap...), is
 * verified sequentially, so its report is the sequential verifier's.
 */
export async function verifyStoreParallel(store: AuditStore, source: StoreSource, opts: VerifyOptions, known: KnownStreams = {}, popts: ParallelOptions = {}): Promise<StreamReport[]> {
  const per = popts.rangeRecords ?? DEFAULT_RANGE;
  const pv = new ParallelVerifier(source, opts.keyring ?? null, popts);
  try {
    return await verifyStore(store, opts, known, async (stream, cps, o) => {
      // A stream that begins in v1 (written, or begun, by an older gatehouse) is for the sequential verifier.
      const first = await store.readRaw(stream, 0, 1);
      if (first.length === 0 || !isStoredV2((first[0] as { data: string }).data)) {
        popts.onSequential?.(stream, first.length === 0 ? 'no records' : 'its first record is not v2');
        return null;
      }
      const ranges = source.kind === 'sqlite' ? sqliteRanges(source.file, per) : await postgresRanges(source, stream, per);
      return pv.verifyStream(stream, ranges, cps, o);
    });
  } finally {
    await pv.close();
  }
}

/** An export laid out as `audit export` writes it: per stream, one run of record lines, then its checkpoints. */
interface ExportPlan {
  readonly streams: Array<{ stream: string; ranges: Range[]; checkpoints: Checkpoint[] }>;
}

const CHECKPOINT_LINE = Buffer.from('\n{"checkpoint":');
const NL = 0x0a;

/** The line starting at `at` (without its newline), read from the file in windows. */
function lineAt(fd: number, at: number, size: number): { text: string; end: number } {
  const parts: Buffer[] = [];
  let len = 0;
  for (let pos = at; ; ) {
    const buf = Buffer.allocUnsafe(65536);
    const n = readSync(fd, buf, 0, buf.length, pos);
    const nl = buf.subarray(0, n).indexOf(NL);
    if (nl >= 0 || n === 0 || pos + n >= size) {
      const last = buf.subarray(0, nl >= 0 ? nl : n);
      parts.push(last);
      len += last.length;
      return { text: Buffer.concat(parts).toString('utf8'), end: at + len };
    }
    parts.push(buf.subarray(0, n));
    len += n;
    pos += n;
  }
}

/**
 * The plan of an export for parallel verification, or null when the file is not laid out
 * as `audit export` writes it (then it is verified sequentially). One pass that only looks
 * for checkpoint lines (`\n{"checkpoint":`); the runs of lines between them are each one
 * stream's records (the stream of its first line), split into ranges at line boundaries.
 * Whether every line of a run is a record of that stream is the workers' check.
 */
function planExport(file: string, rangeBytes: number): ExportPlan | null {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const header = lineAt(fd, 0, size);
    let h: { format?: unknown; streams?: unknown };
    try {
      h = JSON.parse(header.text) as typeof h;
    } catch {
      return null;
    }
    if (h === null || typeof h !== 'object' || h.format !== 'gatehouse-audit-export') return null;
    // Checkpoint lines: the byte offset of each line start.
    const cpStarts: number[] = [];
    const block = Buffer.allocUnsafe(8 << 20);
    const keep = CHECKPOINT_LINE.length - 1;
    for (let pos = header.end; pos < size; ) {
      const n = readSync(fd, block, 0, block.length, pos);
      if (n === 0) break;
      let i = block.subarray(0, n).indexOf(CHECKPOINT_LINE);
      while (i >= 0) {
        cpStarts.push(pos + i + 1);
        i = block.subarray(0, n).indexOf(CHECKPOINT_LINE, i + 1);
      }
      // Overlap the blocks so a needle across the boundary is found.
      pos += n <= keep ? n : n - keep;
      if (n < block.length) break;
    }
    const streams = new Map<string, { stream: string; ranges: Range[]; checkpoints: Checkpoint[] }>();
    const entry = (s: string) => {
      let e = streams.get(s);
      if (e === undefined) streams.set(s, (e = { stream: s, ranges: [], checkpoints: [] }));
      return e;
    };
    let at = header.end + 1;
    const starts = [...new Set(cpStarts)].sort((a, b) => a - b);
    for (let k = 0; k <= starts.length; k++) {
      const next = k < starts.length ? (starts[k] as number) : size;
      if (next > at) {
        // A run of record lines [at, next): its stream is its first line's.
        const first = lineAt(fd, at, size);
        let stream: unknown;
        try {
          stream = (JSON.parse(first.text) as { record?: { stream?: unknown } }).record?.stream;
        } catch {
          return null;
        }
        if (typeof stream !== 'string' || !isStoredV2(first.text.slice(10, -1))) return null;
        const e = entry(stream);
        // One run per stream: records of a stream split around another's are for the sequential reader.
        if (e.ranges.length > 0) return null;
        for (let lo = at; lo < next; ) {
          let hi = Math.min(next, lo + rangeBytes);
          if (hi < next) hi = Math.min(next, lineAt(fd, hi, size).end + 1);
          e.ranges.push({ lo, hi });
          lo = hi;
        }
      }
      if (k === starts.length) break;
      const line = lineAt(fd, next, size);
      let c: unknown;
      try {
        c = (JSON.parse(line.text) as { checkpoint?: unknown }).checkpoint;
      } catch {
        return null;
      }
      if (c === null || typeof c !== 'object' || typeof (c as { stream?: unknown }).stream !== 'string') return null;
      entry((c as Checkpoint).stream).checkpoints.push(c as Checkpoint);
      at = line.end + 1;
    }
    // A listed stream without records, or checkpoints without records: the sequential verifier names it.
    const listed = Array.isArray(h.streams) ? (h.streams as unknown[]) : [];
    for (const s of listed) if (typeof s !== 'string' || !streams.has(s)) return null;
    for (const e of streams.values()) if (e.ranges.length === 0) return null;
    return { streams: [...streams.values()] };
  } finally {
    closeSync(fd);
  }
}

/**
 * verifyExport (sources.ts) in parallel: the export is planned (planExport) and each
 * stream verified by the workers; if the plan fails or any stream has a problem, the
 * whole export is verified sequentially, so every report naming a problem — and the
 * order and set of streams — is the sequential verifier's.
 */
export async function verifyExportParallel(file: string, opts: VerifyOptions, popts: ParallelOptions = {}): Promise<StreamReport[]> {
  const plan = planExport(file, (popts.rangeRecords ?? DEFAULT_RANGE) * 512);
  if (plan === null) {
    popts.onSequential?.(null, 'the export is not laid out as `audit export` writes it');
    return verifyExport(file, opts);
  }
  const pv = new ParallelVerifier({ kind: 'export', file }, opts.keyring ?? null, popts);
  try {
    const out: StreamReport[] = [];
    for (const s of plan.streams) {
      const rep = await pv.verifyStream(s.stream, s.ranges, s.checkpoints, opts);
      if (rep === null) return await verifyExport(file, opts);
      out.push(rep);
    }
    return out;
  } finally {
    await pv.close();
  }
}
