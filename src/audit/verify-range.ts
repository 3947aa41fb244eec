/**
 * The optimistic check of one range of a v2 stream (verify-parallel.ts runs it in worker
 * threads, one range each): it accepts the range only if nothing in it could be a problem
 * — every record a v2 record in its stored form, of the stream, with the next seq, its
 * content hashing to its leaf, each batch under one key and (with the keyring) every batch
 * that begins and ends inside the range sealed over the seal before it. It never names a
 * problem: on anything else it says why it gave up, and the caller verifies the whole
 * stream sequentially (verify.ts), which names what is wrong. What it cannot check alone —
 * the batch the range begins in (its first records may be in the range before, and its
 * chain value is the previous range's last seal) — it hands to the caller with the leaves
 * needed, and the batch it ends in likewise.
 *
 * The stream's Merkle tree: the range's leaves are handed back as the roots of the
 * complete, aligned subtrees that cover them (RFC 9162 tree positions, given the leaf
 * index of the range's first record), split at the checkpoints' seqs, so the caller
 * extends its frontier by a few hashes per range instead of one per record.
 */
import type { MacKey } from './chain-hash.js';
import { node2, rootOfLeaves, sealOf } from './v2.js';
import { storedV2Links, type StoredLeafHasher } from './verify.js';

/** A batch the caller completes: its records in this range, up to its seal (head) or to the range's end (tail). */
export interface PartialBatch {
  /** Seq of its first record in this range. */
  readonly from: number;
  /** Seq of its last record in this range. */
  readonly to: number;
  readonly kid: string;
  /** The leaves of records from..to, hex, concatenated. */
  readonly leaves: string;
  /** Head only: the seal it ends with and that seal's seal_first. */
  readonly seal: string | null;
  readonly sealFirst: number;
}

/** Complete subtrees [level, root] covering the leaves up to and including seq `upTo`, left to right. */
export interface MerklePiece {
  readonly upTo: number;
  readonly subtrees: Array<[number, string]>;
}

export type RangeResult =
  | { readonly ok: false; readonly why: string }
  | {
      readonly ok: true;
      readonly records: number;
      readonly firstSeq: number;
      readonly lastSeq: number;
      /** Records from the range's start through the first seal (null: no seal in the range; everything is `tail`). */
      readonly head: PartialBatch | null;
      /** The last seal in the range (the chain value after it), when a batch after `head` ends in the range. */
      readonly lastSeal: string | null;
      /** Records after the last seal (the batch continues in the next range), or null. */
      readonly tail: PartialBatch | null;
      readonly pieces: MerklePiece[];
      /** The seal at each checkpoint seq in the range (a checkpoint is at a batch's end: a record there without a seal gives up). */
      readonly cpSeals: Array<[number, string]>;
    };

export interface RangeSpec {
  readonly stream: string;
  /** Leaf index of seq s is s − seqOffset (the stream's first record's seq minus the leaves before it). */
  readonly seqOffset: number;
  /** The checkpoints' seqs, ascending (only those in the range matter). */
  readonly cpSeqs: readonly number[];
}

export class RangeChecker {
  private readonly streamMember: string;
  private readonly leaves: string[] = [];
  private firstSeq = 0;
  private lastSeq = 0;
  private head: PartialBatch | null = null;
  /** The batch being read: index of its first leaf in `leaves`, its kid; its chain value before it (null: the head's, unknown here). */
  private batchStart = 0;
  private batchKid: string | null = null;
  private prevSeal: string | null = null;
  private readonly cpSeals: Array<[number, string]> = [];
  private cpIdx = 0;
  private why: string | null = null;

  constructor(
    private readonly spec: RangeSpec,
    private readonly keys: ((kid: string) => MacKey | undefined) | null,
    private readonly hasher: StoredLeafHasher,
  ) {
    this.streamMember = `,"stream":${JSON.stringify(spec.stream)},"subject":`;
  }

  /** False once the range is given up (the rest need not be read). */
  get going(): boolean {
    return this.why === null;
  }

  giveUp(why: string): void {
    if (this.why === null) this.why = why;
  }

  /** One record in its stored form, in storage order. */
  add(data: string): void {
    if (this.why !== null) return;
    const r = storedV2Links(data, this.spec.stream, this.streamMember, this.hasher);
    if (r === null) return this.giveUp('a record that is not an intact v2 record of the stream');
    const seq = r.seq;
    if (this.leaves.length === 0) this.firstSeq = seq;
    else if (seq !== this.lastSeq + 1) return this.giveUp(`seq ${seq} after ${this.lastSeq}`);
    this.lastSeq = seq;
    if (this.batchKid === null) this.batchKid = r.kid;
    else if (r.kid !== this.batchKid) return this.giveUp(`record ${seq} names another key than its batch`);
    this.leaves.push(r.leaf);
    const cps = this.spec.cpSeqs;
    while (this.cpIdx < cps.length && (cps[this.cpIdx] as number) < seq) this.cpIdx++;
    const atCp = this.cpIdx < cps.length && cps[this.cpIdx] === seq;
    if (r.seal === null) {
      if (atCp) this.giveUp(`record ${seq} carries no seal but a checkpoint is at its seq`);
      return;
    }
    if (atCp) this.cpSeals.push([seq, r.seal]);
    const end = this.leaves.length;
    if (this.head === null) {
      // The batch the range begins in: its first records and chain value may lie before the range.
      this.head = { from: this.firstSeq, to: seq, kid: r.kid, leaves: this.leaves.join(''), seal: r.seal, sealFirst: r.sealFirst };
    } else {
      const first = this.firstSeq + this.batchStart;
      if (r.sealFirst !== first) return this.giveUp(`record ${seq}'s seal does not begin at ${first}`);
      if (this.keys !== null) {
        const key = this.keys(r.kid);
        if (key === undefined || sealOf(key, this.prevSeal as string, first, seq, rootOfLeaves(this.leaves, this.batchStart, end)) !== r.seal) return this.giveUp(`the seal of batch ${first}..${seq}`);
      }
    }
    this.prevSeal = r.seal;
    this.batchStart = end;
    this.batchKid = null;
  }

  result(): RangeResult {
    if (this.why !== null) return { ok: false, why: this.why };
    const n = this.leaves.length;
    if (n === 0) return { ok: true, records: 0, firstSeq: 0, lastSeq: 0, head: null, lastSeal: null, tail: null, pieces: [], cpSeals: [] };
    const tail: PartialBatch | null = this.batchStart < n ? { from: this.firstSeq + this.batchStart, to: this.lastSeq, kid: this.batchKid as string, leaves: this.leaves.slice(this.batchStart).join(''), seal: null, sealFirst: 0 } : null;
    const lastSeal = this.head !== null && this.prevSeal !== this.head.seal ? this.prevSeal : null;
    // Pieces of the Merkle tree, split at the checkpoints inside the range.
    const pieces: MerklePiece[] = [];
    let lo = 0;
    for (const [seq] of this.cpSeals) {
      const hi = seq - this.firstSeq + 1;
      pieces.push({ upTo: seq, subtrees: this.subtrees(lo, hi) });
      lo = hi;
    }
    if (lo < n) pieces.push({ upTo: this.lastSeq, subtrees: this.subtrees(lo, n) });
    return { ok: true, records: n, firstSeq: this.firstSeq, lastSeq: this.lastSeq, head: this.head, lastSeal, tail, pieces, cpSeals: this.cpSeals };
  }

  /** The aligned complete subtrees covering leaves[lo, hi) at their places in the stream's tree. */
  private subtrees(lo: number, hi: number): Array<[number, string]> {
    const out: Array<[number, string]> = [];
    const base = this.firstSeq - this.spec.seqOffset; // tree index of leaves[0]
    let i = lo;
    while (i < hi) {
      const pos = base + i;
      let size = 1;
      let level = 0;
      // The largest power of two that pos is a multiple of and that fits before hi.
      while (pos % (size * 2) === 0 && i + size * 2 <= hi) {
        size *= 2;
        level++;
      }
      out.push([level, perfectRoot(this.leaves, i, size)]);
      i += size;
    }
    return out;
  }
}

/** MTH of a complete subtree: `size` (a power of two) leaves from `lo`, pairwise level by level. */
function perfectRoot(leaves: readonly string[], lo: number, size: number): string {
  if (size === 1) return leaves[lo] as string;
  const level: string[] = new Array<string>(size / 2);
  for (let j = 0; j < size / 2; j++) level[j] = node2(leaves[lo + 2 * j] as string, leaves[lo + 2 * j + 1] as string);
  for (let m = size / 2; m > 1; m /= 2) for (let j = 0; j < m / 2; j++) level[j] = node2(level[2 * j] as string, level[2 * j + 1] as string);
  return level[0] as string;
}
