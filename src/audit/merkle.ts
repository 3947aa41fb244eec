/**
 * RFC 9162 §2.1.1 Merkle Tree Hash over the stream's record hashes (each entry is the
 * 32-byte record hash): leaf = SHA-256(0x00 ‖ entry), node = SHA-256(0x01 ‖ left ‖ right),
 * the tree split at the largest power of two smaller than n; MTH({}) = SHA-256("").
 *
 * `MerkleAccumulator` keeps the right frontier (one hash per level, O(log n) memory) so a
 * writer can append leaves forever and take a root at any time.
 */
import { createHash, hash } from 'node:crypto';

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

/** Incremental MTH: push leaves, read the root of everything pushed so far. */
export class MerkleAccumulator {
  /** stack[i]: root of a complete subtree of 2^i leaves, or null. */
  private readonly stack: Array<Buffer | null> = [];
  size = 0;

  push(entry: Buffer): void {
    let h = leafHash(entry);
    let i = 0;
    while (i < this.stack.length && this.stack[i] !== null) {
      h = nodeHash(this.stack[i] as Buffer, h);
      this.stack[i] = null;
      i++;
    }
    if (i === this.stack.length) this.stack.push(h);
    else this.stack[i] = h;
    this.size++;
  }

  /** RFC 9162 root: complete subtrees combined right to left (smaller subtrees are the right children). */
  root(): Buffer {
    if (this.size === 0) return createHash('sha256').digest();
    let acc: Buffer | null = null;
    for (let i = 0; i < this.stack.length; i++) {
      const h = this.stack[i];
      if (h === null || h === undefined) continue;
      acc = acc === null ? h : nodeHash(h, acc);
    }
    return acc as Buffer;
  }

  /** Serializable frontier (to resume after a restart without re-reading the stream). */
  state(): { size: number; stack: Array<string | null> } {
    return { size: this.size, stack: this.stack.map((b) => (b === null ? null : b.toString('hex'))) };
  }

  static from(state: { size: number; stack: Array<string | null> }): MerkleAccumulator {
    const m = new MerkleAccumulator();
    m.size = state.size;
    for (const s of state.stack) m.stack.push(s === null ? null : Buffer.from(s, 'hex'));
    return m;
  }
}
