/**
 * RFC 9162 §2.1.1 Merkle Tree Hash over the stream's records: leaf = SHA-256(0x00 ‖ entry)
 * where the entry is a v1 record's 32-byte hash, or a v2 record's canonical form (its
 * `leaf`, v2.ts); node = SHA-256(0x01 ‖ left ‖ right), the tree split at the largest power
 * of two smaller than n; MTH({}) = SHA-256("").
 *
 * `MerkleAccumulator` keeps the right frontier (one hash per level, O(log n) memory) so a
 * writer can append leaves forever and take a root at any time.
 */
import { createHash, hash } from 'node:crypto';
import { leafHex, nodeHex } from './chain-hash.js';

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

// One-shot hashes (cheaper than Hash objects): two per record on average.
export function leafHash(entry: Buffer): Buffer {
  return hash('sha256', Buffer.concat([LEAF, entry]), 'buffer');
}

export function nodeHash(l: Buffer, r: Buffer): Buffer {
  return hash('sha256', Buffer.concat([NODE, l, r]), 'buffer');
}

/** The reference definition, recursive (used by tests and small inputs). */
export function merkleRoot(entries: readonly Buffer[]): Buffer {
  if (entries.length === 0) return createHash('sha256').digest();
  return mth(entries, 0, entries.length);
}

function mth(e: readonly Buffer[], lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 1) return leafHash(e[lo] as Buffer);
  let k = 1;
  while (k * 2 < n) k *= 2;
  return nodeHash(mth(e, lo, lo + k), mth(e, lo + k, hi));
}

const EMPTY_ROOT = createHash('sha256').digest('hex');

/**
 * Incremental MTH: push leaves, read the root of everything pushed so far. Hashes are
 * kept as hex (the writer's and verifier's per-record path; chain-hash.ts says why).
 */
export class MerkleAccumulator {
  /** stack[i]: root of a complete subtree of 2^i leaves, or null. */
  private readonly stack: Array<string | null> = [];
  size = 0;

  /** Appends one leaf: a 32-byte entry (a record hash), as hex or bytes. */
  push(entry: string | Buffer): void {
    this.pushLeaf(leafHex(typeof entry === 'string' ? entry : entry.toString('hex')));
  }

  /** Appends one leaf given as its leaf hash (hex): a v2 record's `leaf` (v2.ts). */
  pushLeaf(leaf: string): void {
    let h = leaf;
    let i = 0;
    while (i < this.stack.length && this.stack[i] !== null) {
      h = nodeHex(this.stack[i] as string, h);
      this.stack[i] = null;
      i++;
    }
    if (i === this.stack.length) this.stack.push(h);
    else this.stack[i] = h;
    this.size++;
  }

  /** RFC 9162 root, hex: complete subtrees combined right to left (smaller subtrees are the right children). */
  rootHex(): string {
    if (this.size === 0) return EMPTY_ROOT;
    let acc: string | null = null;
    for (let i = 0; i < this.stack.length; i++) {
      const h = this.stack[i];
      if (h === null || h === undefined) continue;
      acc = acc === null ? h : nodeHex(h, acc);
    }
    return acc as string;
  }

  root(): Buffer {
    return Buffer.from(this.rootHex(), 'hex');
  }

  /** Serializable frontier (to resume after a restart without re-reading the stream). */
  state(): { size: number; stack: Array<string | null> } {
    return { size: this.size, stack: [...this.stack] };
  }

  static from(state: { size: number; stack: Array<string | null> }): MerkleAccumulator {
    const m = new MerkleAccumulator();
    m.size = state.size;
    for (const s of state.stack) m.stack.push(s);
    return m;
  }
}

// RFC 9162 §2.1.3–2.1.4: inclusion and consistency proofs over the same tree, on hex.
// Proofs are built from, and verified against, leaf hashes: H(0x00 ‖ hash) of a v1 record,
// a v2 record's `leaf` = H(0x00 ‖ canonical) (v2.ts) — so a stream that switched from v1 to
// v2 is one tree. Sizes stay below 2^53, so the bit arithmetic below uses division, not
// 32-bit shifts.

/** MTH(D[lo:hi]) over leaf hashes (hex), recursive (O(hi − lo)). */
function mthHex(leaves: readonly string[], lo: number, hi: number): string {
  const n = hi - lo;
  if (n === 0) return EMPTY_ROOT;
  if (n === 1) return leaves[lo] as string;
  const k = split(n);
  return nodeHex(mthHex(leaves, lo, lo + k), mthHex(leaves, lo + k, hi));
}

/** The largest power of two smaller than n (n > 1). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** RFC 9162 §2.1.3.1 PATH(m, D[n]) for the tree over all of `leaves` (leaf hashes, n = leaves.length). */
export function inclusionPath(leaves: readonly string[], m: number): string[] {
  const out: string[] = [];
  const path = (lo: number, hi: number, i: number): void => {
    const n = hi - lo;
    if (n <= 1) return;
    const k = split(n);
    if (i < k) {
      path(lo, lo + k, i);
      out.push(mthHex(leaves, lo + k, hi));
    } else {
      path(lo + k, hi, i - k);
      out.push(mthHex(leaves, lo, lo + k));
    }
  };
  if (!(m >= 0 && m < leaves.length)) throw new RangeError(`leaf index ${m} is not in a tree of ${leaves.length}`);
  path(0, leaves.length, m);
  return out;
}

/** RFC 9162 §2.1.4.1 PROOF(m, D[n]) for the tree over all of `leaves` (leaf hashes, n = leaves.length). */
export function consistencyPath(leaves: readonly string[], m: number): string[] {
  const out: string[] = [];
  const sub = (lo: number, hi: number, mm: number, b: boolean): void => {
    const n = hi - lo;
    if (mm === n) {
      if (!b) out.push(mthHex(leaves, lo, hi));
      return;
    }
    const k = split(n);
    if (mm <= k) {
      sub(lo, lo + k, mm, b);
      out.push(mthHex(leaves, lo + k, hi));
    } else {
      sub(lo + k, hi, mm - k, false);
      out.push(mthHex(leaves, lo, lo + k));
    }
  };
  if (!(m >= 1 && m <= leaves.length)) throw new RangeError(`a consistency proof needs 1 ≤ ${m} ≤ ${leaves.length}`);
  sub(0, leaves.length, m, true);
  return out;
}

const odd = (x: number) => x % 2 === 1;
const half = (x: number) => Math.floor(x / 2);

/** RFC 9162 §2.1.3.2: is `leaf` (a leaf hash, hex) leaf `index` of the tree of `size` leaves with root `root`? */
export function verifyInclusion(leaf: string, index: number, size: number, path: readonly string[], root: string): boolean {
  if (!(index >= 0 && index < size)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      r = nodeHex(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHex(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && r === root;
}

/** RFC 9162 §2.1.4.2: does the tree of `second` leaves (root `secondRoot`) extend the one of `first` (`firstRoot`)? */
export function verifyConsistency(first: number, second: number, firstRoot: string, secondRoot: string, proof: readonly string[]): boolean {
  if (!(first >= 1 && first <= second)) return false;
  if (first === second) return proof.length === 0 && firstRoot === secondRoot;
  if (proof.length === 0) return false;
  // A first tree of a power-of-two size is a complete subtree: its root starts the path.
  const path = Number.isInteger(Math.log2(first)) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0] as string;
  let sr = path[0] as string;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHex(c, fr);
      sr = nodeHex(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHex(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return fr === firstRoot && sr === secondRoot && sn === 0;
}
