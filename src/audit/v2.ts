/**
 * Chain format v2 (docs/audit.md, "The chain, v2"): one hash per record, one MAC per batch.
 *
 *   leaf[n]   = H(0x00 ‖ canonical(r[n]))                          RFC 9162 leaf hash
 *   root[a,b] = MTH(canonical(r[a]), …, canonical(r[b]))            RFC 9162 §2.1.1
 *   seal[a,b] = HMAC-SHA256(key[kid], "gatehouse-audit-v2:seal" ‖ prev ‖ u64be(a) ‖ u64be(b) ‖ root[a,b])
 *
 * A batch is the records one store transaction writes: consecutive seqs a..b of one
 * stream, all with the same `kid`. `prev` is the chain value before the batch: the seal
 * of the batch before it, the `hash` of the v1 record before it (a stream written by an
 * older gatehouse continues), or genesis(stream). The chain value after a v2 batch is its
 * seal: checkpoints sign it as `head_hash`, archives and prunes anchor on it. The stream's
 * Merkle tree (checkpoints, proofs) takes leaf[n] as the leaf of a v2 record and
 * H(0x00 ‖ hash[n]) as the leaf of a v1 record.
 *
 * Why: v1 costs five SHA-256 calls per record (MAC = two, hash, leaf, amortized node),
 * each ~0.5–1 µs of per-call overhead whatever the input. v2 costs the leaf and, amortized,
 * one node of the batch tree and one of the stream tree, and the MAC once per batch.
 *
 * Stored form (what the stores keep in `data` and exports write): the canonical JSON with
 * its closing `}` replaced by `,"leaf":"<hex>"}`; the last record of a batch also carries
 * the seal: `,"leaf":"<hex>","seal":"<hex>","seal_first":<a>}`. The canonical bytes are
 * the text before `,"leaf":"` plus `}`: a verifier hashes them as they are, without
 * parsing (inside a JSON string every quote is escaped, so `,"leaf":"` only ever marks
 * the member).
 */
import { hash } from 'node:crypto';
import type { MacKey } from './chain-hash.js';

export const V2 = 2;

const SEAL_LABEL = Buffer.from('gatehouse-audit-v2:seal', 'utf8');
const LEAF_KEY = ',"leaf":"';
const SEAL_KEY = '","seal":"';
const SEAL_FIRST_KEY = '","seal_first":';

/** Hashes one record's canonical bytes at a time into a reused scratch buffer (chain-hash.ts says why). */
export class LeafHasher {
  private buf = Buffer.allocUnsafe(8192);

  /** leaf = H(0x00 ‖ canonical), hex. */
  leaf(canon: string): string {
    const need = 1 + canon.length * 3;
    if (need > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf[0] = 0;
    const n = this.buf.write(canon, 1, 'utf8');
    return hash('sha256', this.buf.subarray(0, 1 + n), 'hex');
  }

  /**
   * The leaf of a record in its stored form whose canonical part ends at `end` (the index
   * of `,"leaf":"`): the canonical bytes are data[0, end) + "}".
   */
  leafOfStored(data: string, end: number): string {
    const need = 2 + end * 3;
    if (need > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf[0] = 0;
    const n = this.buf.write(end === data.length ? data : data.slice(0, end), 1, 'utf8');
    this.buf[1 + n] = 0x7d; // "}"
    return hash('sha256', this.buf.subarray(0, 2 + n), 'hex');
  }
}

const node = Buffer.allocUnsafe(65);

/** RFC 9162 node hash H(0x01 ‖ left ‖ right), hex in and out. */
export function node2(leftHex: string, rightHex: string): string {
  node[0] = 1;
  node.write(leftHex, 1, 32, 'hex');
  node.write(rightHex, 33, 32, 'hex');
  return hash('sha256', node, 'hex');
}

/**
 * MTH over leaf hashes (hex) leaves[lo, hi), hi > lo. Iterative over complete subtrees,
 * combined right to left: the same tree as the recursive definition (largest power of
 * two smaller than n on the left), n − 1 node hashes.
 */
export function rootOfLeaves(leaves: readonly string[], lo = 0, hi = leaves.length): string {
  if (hi <= lo) throw new RangeError('a batch has at least one record');
  // Frontier of complete subtrees, as MerkleAccumulator keeps it.
  const stack: Array<string | null> = [];
  for (let i = lo; i < hi; i++) {
    let h = leaves[i] as string;
    let k = 0;
    while (k < stack.length && stack[k] !== null) {
      h = node2(stack[k] as string, h);
      stack[k] = null;
      k++;
    }
    if (k === stack.length) stack.push(h);
    else stack[k] = h;
  }
  let acc: string | null = null;
  for (const h of stack) {
    if (h === null) continue;
    acc = acc === null ? h : node2(h, acc);
  }
  return acc as string;
}

const sealOuter = Buffer.allocUnsafe(64 + 32);
const sealMsg = Buffer.allocUnsafe(64 + SEAL_LABEL.length + 32 + 8 + 8 + 32);

/** seal = HMAC-SHA256(key, "gatehouse-audit-v2:seal" ‖ prev ‖ u64be(first) ‖ u64be(last) ‖ root), hex. */
export function sealOf(key: MacKey, prevHex: string, first: number, last: number, rootHex: string): string {
  // RFC 2104 over one-shot hashes with the pads precomputed, as chain-hash.ts does.
  key.ipad.copy(sealMsg, 0);
  let o = 64;
  o += SEAL_LABEL.copy(sealMsg, o);
  o += sealMsg.write(prevHex, o, 32, 'hex');
  sealMsg.writeBigUInt64BE(BigInt(first), o);
  o += 8;
  sealMsg.writeBigUInt64BE(BigInt(last), o);
  o += 8;
  o += sealMsg.write(rootHex, o, 32, 'hex');
  const inner = hash('sha256', sealMsg.subarray(0, o), 'hex');
  key.opad.copy(sealOuter, 0);
  sealOuter.write(inner, 64, 32, 'hex');
  return hash('sha256', sealOuter, 'hex');
}

/** The stored form of a record of a batch (see the file comment). */
export function storedV2(canon: string, leafHex: string, seal: { readonly first: number; readonly seal: string } | null): string {
  const head = canon.slice(0, -1);
  return seal === null ? `${head}${LEAF_KEY}${leafHex}"}` : `${head}${LEAF_KEY}${leafHex}${SEAL_KEY}${seal.seal}${SEAL_FIRST_KEY}${seal.first}}`;
}

/** A v2 record's stored form taken apart without JSON.parse; null when it is not one. */
export interface StoredV2 {
  /** Index of `,"leaf":"`: the canonical bytes are data[0, end) + "}". */
  readonly end: number;
  readonly leaf: string;
  /** Present on the last record of a batch. */
  readonly seal: string | null;
  readonly sealFirst: number;
}

const HEX64 = /^[0-9a-f]{64}$/;

export function parseStoredV2(data: string): StoredV2 | null {
  const end = data.lastIndexOf(LEAF_KEY);
  if (end < 1 || !data.endsWith('}')) return null;
  const leaf = data.slice(end + LEAF_KEY.length, end + LEAF_KEY.length + 64);
  const after = end + LEAF_KEY.length + 64;
  if (!HEX64.test(leaf)) return null;
  if (data.length === after + 2 && data.charCodeAt(after) === 0x22 /* " */) return { end, leaf, seal: null, sealFirst: 0 };
  if (!data.startsWith(SEAL_KEY, after)) return null;
  const seal = data.slice(after + SEAL_KEY.length, after + SEAL_KEY.length + 64);
  const f = after + SEAL_KEY.length + 64;
  if (!HEX64.test(seal) || !data.startsWith(SEAL_FIRST_KEY, f)) return null;
  const digits = data.slice(f + SEAL_FIRST_KEY.length, -1);
  if (!/^[1-9][0-9]{0,15}$/.test(digits)) return null;
  const sealFirst = Number(digits);
  if (!Number.isSafeInteger(sealFirst)) return null;
  return { end, leaf, seal, sealFirst };
}

/** Whether a stored record is v2 (its canonical part ends with `"v":2`). */
export function isStoredV2(data: string): boolean {
  const end = data.lastIndexOf(LEAF_KEY);
  return end > 0 && data.startsWith(',"v":2', end - 6);
}

export interface SealedBatch {
  /** The stored form of each record, in seq order. */
  readonly data: string[];
  readonly leaves: string[];
  readonly first: number;
  readonly last: number;
  readonly root: string;
  readonly seal: string;
}

/**
 * Seals one batch: `canons[i]` is the canonical form of the record with seq first + i
 * (already carrying that seq, the stream, kid and v = 2). The reference sealer: the
 * writer's worker and the tests both use it.
 */
export function sealBatch(canons: readonly string[], first: number, prevHex: string, key: MacKey, hasher: LeafHasher = new LeafHasher()): SealedBatch {
  const n = canons.length;
  const leaves = new Array<string>(n);
  for (let i = 0; i < n; i++) leaves[i] = hasher.leaf(canons[i] as string);
  const last = first + n - 1;
  const root = rootOfLeaves(leaves);
  const seal = sealOf(key, prevHex, first, last, root);
  const data = new Array<string>(n);
  for (let i = 0; i < n; i++) data[i] = storedV2(canons[i] as string, leaves[i] as string, i === n - 1 ? { first, seal } : null);
  return { data, leaves, first, last, root, seal };
}
