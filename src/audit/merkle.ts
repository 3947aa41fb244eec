/**
 * RFC 9162 §2.1.1 Merkle Tree Hash over the stream's record hashes (each entry is the
 * 32-byte record hash): leaf = SHA-256(0x00 ‖ entry), node = SHA-256(0x01 ‖ left ‖ right),
 * the tree split at the largest power of two smaller than n; MTH({}) = SHA-256("").
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
    let h = leafHex(typeof entry === 'string' ? entry : entry.toString('hex'));
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
