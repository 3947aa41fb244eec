/**
 * The audit writer's seal worker: owns the stream's chain state (the chain value, the last
 * sealed seq and the stream's Merkle frontier) and does every hash of chain format v2
 * (v2.ts) off the gateway's thread: per batch, one leaf per record, the batch's Merkle
 * root, the seal, the stream tree's nodes, and the records' stored forms.
 *
 * One request at a time, in arrival order (batches are sealed in seq order: a key sent
 * before a batch applies to it). Anything unexpected (a batch that does not follow the
 * last sealed seq, a key id it was not given, a malformed message) is thrown: the thread
 * dies and the writer fails closed (sealer.ts), since a chain state it cannot trust must
 * not seal another record.
 */
import { hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { MacKey } from './chain-hash.js';
import { MerkleAccumulator } from './merkle.js';
import { SEAL_NUMS, type SealReply, type SealRequest } from './seal-protocol.js';
import { rootOfLeaves, sealOf } from './v2.js';

const port = parentPort;
if (port === null) throw new Error('seal-worker.js runs only as a worker thread of the audit writer');

const keys = new Map<string, MacKey>();
let merkle: MerkleAccumulator | null = null;
let seq = 0;
let prev = '';

/** Leaf input scratch: 0x00 then a record's canonical bytes (one-shot hash, chain-hash.ts says why). */
let scratch = Buffer.allocUnsafe(1 << 14);
/** The batch's stored forms, UTF-8, before they become the reply's one string. */
let out = Buffer.allocUnsafe(1 << 20);

function leafOf(rec: Buffer): string {
  if (rec.length + 1 > scratch.length) scratch = Buffer.allocUnsafe(Math.max(rec.length + 1, scratch.length * 2));
  scratch[0] = 0;
  rec.copy(scratch, 1);
  return hash('sha256', scratch.subarray(0, rec.length + 1), 'hex');
}

function seal(m: Extract<SealRequest, { op: 'seal' }>): SealReply {
  if (merkle === null) throw new Error('audit seal worker: a batch before init');
  const n = m.count;
  if (!Number.isInteger(n) || n < 0 || n * SEAL_NUMS * 8 > m.nums.byteLength || m.used > m.text.byteLength) throw new Error('audit seal worker: malformed batch');
  if (n === 0) return { id: m.id, text: '', lens: new Float64Array(0), leaves: '', seq, chain: prev, root: m.state ? merkle.rootHex() : null, frontier: m.state ? merkle.state() : null };
  // Seqs only go up; a batch may start after a gap (the restart record after a crash in
  // async mode names it, and the seal covers its first seq).
  if (!(m.first > seq)) throw new Error(`audit seal worker: a batch from seq ${m.first} after seq ${seq}`);
  const key = keys.get(m.kid);
  if (key === undefined) throw new Error(`audit seal worker: key ${m.kid} was never given`);
  const nums = new Float64Array(m.nums, 0, n * SEAL_NUMS);
  const src = Buffer.from(m.text, 0, m.used);
  const leaves = new Array<string>(n);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const len = nums[i * SEAL_NUMS] as number;
    if (!(len >= 2) || pos + len > m.used || src[pos] !== 0x7b || src[pos + len - 1] !== 0x7d) throw new Error('audit seal worker: malformed batch');
    leaves[i] = leafOf(src.subarray(pos, pos + len));
    pos += len;
  }
  if (pos !== m.used) throw new Error('audit seal worker: malformed batch');
  const last = m.first + n - 1;
  const chain = sealOf(key, prev, m.first, last, rootOfLeaves(leaves));
  // The stored forms (v2.ts storedV2): each canonical form without its closing brace,
  // then the leaf, and the seal after the batch's last one; UTF-8 into one buffer, made a
  // string once.
  const tail = `","seal":"${chain}","seal_first":${m.first}}`;
  const need = m.used + n * 75 + tail.length;
  if (need > out.length) out = Buffer.allocUnsafe(Math.max(need, out.length * 2));
  const lens = new Float64Array(n);
  let o = 0;
  pos = 0;
  for (let i = 0; i < n; i++) {
    const len = nums[i * SEAL_NUMS] as number;
    o += src.copy(out, o, pos, pos + len - 1);
    pos += len;
    const leaf = leaves[i] as string;
    o += out.write(',"leaf":"', o, 'latin1');
    o += out.write(leaf, o, 'latin1');
    const end = i === n - 1 ? tail : '"}';
    o += out.write(end, o, 'latin1');
    lens[i] = (nums[i * SEAL_NUMS + 1] as number) - 1 + 9 + 64 + end.length;
    merkle.pushLeaf(leaf);
  }
  seq = last;
  prev = chain;
  return {
    id: m.id,
    text: out.toString('utf8', 0, o),
    lens,
    leaves: leaves.join(''),
    seq,
    chain,
    root: m.state ? merkle.rootHex() : null,
    frontier: m.state ? merkle.state() : null,
  };
}

port.on('message', (m: SealRequest) => {
  switch (m.op) {
    case 'init':
      merkle = MerkleAccumulator.from(m.frontier);
      seq = m.seq;
      prev = m.prev;
      return;
    case 'key':
      keys.set(m.kid, { ipad: Buffer.from(m.ipad), opad: Buffer.from(m.opad) });
      return;
    case 'seal': {
      const r = seal(m);
      port.postMessage(r, [r.lens.buffer]);
      return;
    }
    default:
      throw new TypeError('audit seal worker: an unknown request');
  }
});
