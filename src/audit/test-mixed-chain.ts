/**
 * Test data (not part of the public API): a stream written first by a v1 writer (chain.ts,
 * one MAC and hash per record) and then continued in chain format v2 (v2.ts sealBatch, one
 * seal per batch) — the mixed stream an upgraded gateway leaves. Either part may be empty.
 * Built with the reference arithmetic only, so it serves the proof and archive tests
 * independently of the writer.
 */
import { canonical, genesis } from './canonical.js';
import { Chain } from './chain.js';
import { leafHex } from './chain-hash.js';
import type { CheckpointSigner } from './checkpoint.js';
import type { Keyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import { emptyBody, type AuditBody, type ChainedRecord } from './record.js';
import type { StoredCheckpoint } from './store/types.js';
import { LeafHasher, sealBatch, V2 } from './v2.js';

export interface MixedRecord {
  readonly stream: string;
  readonly seq: number;
  readonly time: string;
  readonly subject: string | null;
  readonly decision: ChainedRecord['decision'];
  /** v1: the record hash; v2: its leaf. */
  readonly hash: string;
  /** The stored form (the store's `data`, an export's record line). */
  readonly data: string;
  readonly v: 1 | 2;
  /** The RFC 9162 leaf hash of this record in the stream's Merkle tree. */
  readonly leaf: string;
  /** The chain value after this record: v1 its hash; v2 its batch's seal (last record of a batch), else null. */
  readonly chain: string | null;
}

export interface MixedChain {
  readonly records: MixedRecord[];
  readonly checkpoints: StoredCheckpoint[];
  /** The chain value after the last record. */
  readonly head: string;
  readonly merkle: MerkleAccumulator;
}

function body(i: number, edit?: (seq: number, b: AuditBody) => void): AuditBody {
  const b = emptyBody('exchange', new Date(1_700_000_000_000 + i * 1000).toISOString());
  b.request_id = `req-${i}`;
  b.method = 'GET';
  // Strings that need escaping and non-ASCII: the canonical bytes are what is hashed.
  b.path = i % 5 === 0 ? `/item/${i}/caf\u00e9 "q"` : `/item/${i}`;
  b.status = 200;
  b.decision = i % 3 === 0 ? 'refused' : 'allowed';
  b.subject = i % 2 === 0 ? 'alice' : null;
  edit?.(i, b);
  return b;
}

/**
 * Records 1..v1 in format v1, then `batches` (their sizes, in order) in format v2; a signed
 * checkpoint after every seq in `cpAt` (a v2 seq in it must end a batch: the writer
 * checkpoints only there). `edit` changes a record's body before it is sealed (a history
 * rewritten by whoever holds the keys).
 */
export function buildMixedChain(stream: string, v1: number, batches: readonly number[], keys: Keyring, signer: CheckpointSigner, cpAt: readonly number[], edit?: (seq: number, b: AuditBody) => void): MixedChain {
  const merkle = new MerkleAccumulator();
  const chain = new Chain(stream, 0, genesis(stream).toString('hex'), merkle);
  const records: MixedRecord[] = [];
  const checkpoints: StoredCheckpoint[] = [];
  let head = genesis(stream).toString('hex');
  const checkpoint = (seq: number) => {
    if (!cpAt.includes(seq)) return;
    checkpoints.push({ checkpoint: signer.sign({ stream, seq, head_hash: head, merkle_root: merkle.rootHex(), time: new Date(1_700_000_000_000 + seq * 1000 + 500).toISOString() }), frontier: merkle.state() });
  };
  for (let i = 1; i <= v1; i++) {
    const r = chain.seal(body(i, edit), i, keys);
    head = r.hash;
    records.push({ stream, seq: i, time: r.time, subject: r.subject, decision: r.decision, hash: r.hash, data: JSON.stringify(r), v: 1, leaf: leafHex(r.hash), chain: r.hash });
    checkpoint(i);
  }
  const hasher = new LeafHasher();
  let seq = v1;
  for (const size of batches) {
    const first = seq + 1;
    const bodies: AuditBody[] = [];
    const canons: string[] = [];
    for (let k = 0; k < size; k++) {
      const b = body(first + k, edit) as AuditBody & { stream: string; seq: number; kid: string; v: 1 | 2 };
      b.v = V2;
      b.stream = stream;
      b.seq = first + k;
      b.kid = keys.activeId;
      bodies.push(b);
      canons.push(canonical(b as ChainedRecord));
    }
    const sealed = sealBatch(canons, first, head, keys.active, hasher);
    for (let k = 0; k < size; k++) {
      const b = bodies[k] as AuditBody;
      const last = k === size - 1;
      records.push({ stream, seq: first + k, time: b.time, subject: b.subject, decision: b.decision, hash: sealed.leaves[k] as string, data: sealed.data[k] as string, v: 2, leaf: sealed.leaves[k] as string, chain: last ? sealed.seal : null });
      merkle.pushLeaf(sealed.leaves[k] as string);
      if (last) head = sealed.seal;
    }
    seq = sealed.last;
    checkpoint(seq);
  }
  if (checkpoints.length !== cpAt.length) throw new RangeError(`checkpoints at ${cpAt.join(', ')}: a v2 checkpoint must end a batch and every seq must exist`);
  return { records, checkpoints, head, merkle };
}
