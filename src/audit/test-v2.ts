/**
 * v2 chains for the audit tests (not part of the public API): batches sealed with the
 * reference sealer (v2.ts sealBatch), as store records, continuing any chain value.
 */
import { canonical } from './canonical.js';
import type { Keyring } from './keyring.js';
import type { MerkleAccumulator } from './merkle.js';
import { emptyBody, type ChainedRecord } from './record.js';
import type { StoreRecord } from './store/types.js';
import { sealBatch, type SealedBatch } from './v2.js';

export interface TestV2Batch extends SealedBatch {
  readonly records: StoreRecord[];
}

/**
 * Seals seqs first..first+n-1 of `stream` as one v2 batch after chain value `prev` with the
 * keyring's active key; pushes the leaves into `merkle` when given.
 */
export function buildV2Batch(stream: string, first: number, n: number, prev: string, keys: Keyring, merkle?: MerkleAccumulator): TestV2Batch {
  const canons: string[] = [];
  const bodies: ChainedRecord[] = [];
  for (let seq = first; seq < first + n; seq++) {
    const b = emptyBody('exchange', new Date(1_700_000_000_000 + seq * 1000).toISOString()) as ChainedRecord;
    b.request_id = `req-${seq}`;
    b.method = 'GET';
    b.path = `/item/${seq}`;
    b.status = 200;
    b.decision = seq % 3 === 0 ? 'refused' : 'allowed';
    b.subject = seq % 2 === 0 ? 'alice' : null;
    b.v = 2;
    b.stream = stream;
    b.seq = seq;
    b.kid = keys.activeId;
    bodies.push(b);
    canons.push(canonical(b));
  }
  const sealed = sealBatch(canons, first, prev, keys.active);
  if (merkle !== undefined) for (const l of sealed.leaves) merkle.pushLeaf(l);
  const records = bodies.map((b, i) => ({ stream, seq: b.seq, time: b.time, subject: b.subject, decision: b.decision, hash: sealed.leaves[i] as string, data: sealed.data[i] as string }));
  return { ...sealed, records };
}
