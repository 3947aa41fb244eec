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
import { parentPort } from 'node:worker_threads';
import { MerkleAccumulator } from './merkle.js';
import type { SealReply, SealRequest } from './seal-protocol.js';
import { LeafHasher, rootOfLeaves, sealOf, storedV2 } from './v2.js';
import type { MacKey } from './chain-hash.js';

const port = parentPort;
if (port === null) throw new Error('seal-worker.js runs only as a worker thread of the audit writer');

const keys = new Map<string, MacKey>();
const hasher = new LeafHasher();
let merkle: MerkleAccumulator | null = null;
let seq = 0;
let prev = '';

function seal(m: Extract<SealRequest, { op: 'seal' }>): SealReply {
  if (merkle === null) throw new Error('audit seal worker: a batch before init');
  const n = m.lens.length;
  let text = '';
  let leaves = '';
  let lens = new Float64Array(0);
  if (n > 0) {
    // Seqs only go up; a batch may start after a gap (the restart record after a crash in
    // async mode names it, and the seal covers its first seq).
    if (!(m.first > seq)) throw new Error(`audit seal worker: a batch from seq ${m.first} after seq ${seq}`);
    const key = keys.get(m.kid);
    if (key === undefined) throw new Error(`audit seal worker: key ${m.kid} was never given`);
    const leafList = new Array<string>(n);
    const canons = new Array<string>(n);
    let pos = 0;
    for (let i = 0; i < n; i++) {
      const len = m.lens[i] as number;
      const c = m.text.slice(pos, pos + len);
      pos += len;
      canons[i] = c;
      leafList[i] = hasher.leaf(c);
    }
    if (pos !== m.text.length) throw new Error('audit seal worker: malformed batch');
    const last = m.first + n - 1;
    const chain = sealOf(key, prev, m.first, last, rootOfLeaves(leafList));
    // The stored forms, packed: one string joined once.
    const parts = new Array<string>(n);
    lens = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const leaf = leafList[i] as string;
      const d = storedV2(canons[i] as string, leaf, i === n - 1 ? { first: m.first, seal: chain } : null);
      parts[i] = d;
      lens[i] = d.length;
      merkle.pushLeaf(leaf);
    }
    text = parts.join('');
    leaves = leafList.join('');
    seq = last;
    prev = chain;
  }
  return {
    id: m.id,
    text,
    lens,
    leaves,
    seq,
    chain: prev,
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
