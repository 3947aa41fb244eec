/**
 * The chain arithmetic of canonical.ts and merkle.ts on lowercase hex strings, for the
 * per-record loops of the writer (seal) and the verifier. Same results, bit for bit:
 * canonical.test.ts checks every function here against the Buffer/createHmac reference.
 *
 * Why not the reference functions: node:crypto's cost per call, not per byte, dominates a
 * record (measured on the bench machine, ~100-byte inputs: createHmac+update+digest 5.8 µs,
 * hash(…, 'buffer') 2.6 µs, hash(…, 'hex') 0.9 µs, Buffer.from(hex) 1.0 µs). So inputs are
 * written into one reused scratch buffer, digests come out as hex (the form records keep
 * anyway), and HMAC-SHA256 is taken by its RFC 2104 definition
 * H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)) over two one-shot hashes with the padded key blocks
 * computed once per key.
 */
import { createHash, hash } from 'node:crypto';

const BLOCK = 64;

/** An HMAC-SHA256 key with its RFC 2104 pad blocks precomputed. */
export interface MacKey {
  readonly ipad: Buffer;
  readonly opad: Buffer;
}

export function macKey(key: Buffer): MacKey {
  const k = Buffer.alloc(BLOCK);
  (key.length > BLOCK ? createHash('sha256').update(key).digest() : key).copy(k);
  const ipad = Buffer.allocUnsafe(BLOCK);
  const opad = Buffer.allocUnsafe(BLOCK);
  for (let i = 0; i < BLOCK; i++) {
    ipad[i] = (k[i] as number) ^ 0x36;
    opad[i] = (k[i] as number) ^ 0x5c;
  }
  return { ipad, opad };
}

/**
 * One record at a time: `load(prev, canon)` then `mac(key)` and/or `hash(mac)`. Not
 * shareable across interleaved callers (it keeps the loaded record); each chain and each
 * verifier has its own.
 *
 * Scratch layout: [0, 64) the key's ipad block, [64, 96) prev, [96, 96+n) canon,
 * [96+n, 128+n) mac — so H(ipad ‖ prev ‖ canon) and H(prev ‖ canon ‖ mac) are both
 * contiguous ranges of the same bytes.
 */
export class RecordHasher {
  private buf = Buffer.allocUnsafe(8192);
  private readonly outer = Buffer.allocUnsafe(BLOCK + 32);
  private n = 0;

  load(prevHex: string, canon: string): void {
    // UTF-16 code units encode to at most 3 UTF-8 bytes each.
    const need = 128 + canon.length * 3;
    if (need > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.write(prevHex, 64, 32, 'hex');
    this.n = this.buf.write(canon, 96, 'utf8');
  }

  /**
   * Loads a record from its stored form (chain.ts): the canonical bytes are
   * `stored[0, end)` followed by "}" (the stored form replaces the canonical form's closing
   * brace with the three chain members), written without building the canonical string.
   */
  loadStored(prevHex: string, stored: string, end: number): void {
    const need = 128 + end * 3 + 1;
    if (need > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.write(prevHex, 64, 32, 'hex');
    const n = this.buf.write(stored.slice(0, end), 96, 'utf8');
    this.buf[96 + n] = 0x7d; // "}"
    this.n = n + 1;
  }

  /** HMAC-SHA256(key, prev ‖ canon) of the loaded record, hex. */
  mac(key: MacKey): string {
    key.ipad.copy(this.buf, 0);
    const inner = hash('sha256', this.buf.subarray(0, 96 + this.n), 'hex');
    key.opad.copy(this.outer, 0);
    this.outer.write(inner, BLOCK, 32, 'hex');
    return hash('sha256', this.outer, 'hex');
  }

  /** SHA-256(prev ‖ canon ‖ mac) of the loaded record, hex. */
  hash(macHex: string): string {
    this.buf.write(macHex, 96 + this.n, 32, 'hex');
    return hash('sha256', this.buf.subarray(64, 128 + this.n), 'hex');
  }
}

const node = Buffer.allocUnsafe(65);

/** RFC 9162 leaf hash SHA-256(0x00 ‖ entry) of a 32-byte entry given as hex. */
export function leafHex(entryHex: string): string {
  node[0] = 0;
  node.write(entryHex, 1, 32, 'hex');
  return hash('sha256', node.subarray(0, 33), 'hex');
}

/** RFC 9162 node hash SHA-256(0x01 ‖ left ‖ right), hex in and out. */
export function nodeHex(leftHex: string, rightHex: string): string {
  node[0] = 1;
  node.write(leftHex, 1, 32, 'hex');
  node.write(rightHex, 33, 32, 'hex');
  return hash('sha256', node, 'hex');
}
