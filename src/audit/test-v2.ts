/**
 * v2 chains for the audit tests (not part of the public API): batches sealed with the
 * reference sealer (v2.ts sealBatch), as store records, continuing any chain value; and a
 * check of stored streams straight from the chain arithmetic.
 */
import type { KeyObject } from 'node:crypto';
import { canonical, genesis } from './canonical.js';
import { RecordHasher } from './chain-hash.js';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import type { Keyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import { emptyBody, type ChainedRecord, type SealedRecord } from './record.js';
import type { AuditStore, StoreRecord } from './store/types.js';
import { isStoredV2, LeafHasher, parseStoredV2, rootOfLeaves, sealBatch, sealOf, type SealedBatch } from './v2.js';

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

export interface V2CheckReport {
  records: number;
  lastSeq: number;
  latestCheckpointSeq: number;
  /** v2 records (the rest are v1). */
  v2: number;
  /** Batches sealed (v2). */
  batches: number;
  problems: Array<{ seq: number; kind: string; detail: string }>;
}

/**
 * The writer tests' own check of a stored stream, straight from the v1 and v2 arithmetic
 * (chain-hash.ts, v2.ts), independent of verify.ts: every v1 record's MAC, hash and link;
 * every v2 record's canonical bytes and leaf, every batch's root and seal over the chain
 * value before it; seqs (a jump is a `gap`, its detail names a restart record that
 * declares it); every checkpoint's signature, head_hash and Merkle root. Problem kinds
 * follow verify.ts.
 */
export async function checkStream(store: AuditStore, stream: string, keys: Keyring, publicKey?: KeyObject): Promise<V2CheckReport> {
  const rows: Array<{ id: number; data: string }> = [];
  for (let after = 0; ; ) {
    const page = await store.readRaw(stream, after, 1000);
    rows.push(...page);
    if (page.length < 1000) break;
    after = (page[page.length - 1] as { id: number }).id;
  }
  const cps = new Map<number, Checkpoint>();
  for (const c of await store.checkpoints(stream)) cps.set(c.seq, c);
  const rep: V2CheckReport = { records: 0, lastSeq: 0, latestCheckpointSeq: 0, v2: 0, batches: 0, problems: [] };
  const problem = (seq: number, kind: string, detail: string) => rep.problems.push({ seq, kind, detail });
  let prev = genesis(stream).toString('hex');
  const merkle = new MerkleAccumulator();
  const leafHasher = new LeafHasher();
  const v1 = new RecordHasher();
  let batch: { first: number; kid: string; leaves: string[] } | null = null;
  const checkpointAt = (seq: number) => {
    const c = cps.get(seq);
    if (c === undefined) return;
    if (publicKey !== undefined && !verifyCheckpoint(c, publicKey)) problem(seq, 'bad_checkpoint_signature', 'checkpoint signature');
    if (batch !== null) problem(seq, 'modified', 'a checkpoint inside a batch');
    else if (c.head_hash !== prev || c.merkle_root !== merkle.rootHex()) problem(seq, 'modified', 'checkpoint head_hash or merkle_root');
    else rep.latestCheckpointSeq = seq;
  };
  for (const { data } of rows) {
    rep.records++;
    const o = JSON.parse(data) as SealedRecord & Partial<ChainedRecord>;
    if (o.seq !== rep.lastSeq + 1) {
      const declared = o.kind === 'restart' && o.lost_to === o.seq - 1 && o.count === o.seq - 1 - rep.lastSeq;
      problem(rep.lastSeq + 1, 'gap', declared ? `seqs ${rep.lastSeq + 1}..${o.seq - 1} declared lost by the restart record at seq ${o.seq}` : `seqs ${rep.lastSeq + 1}..${o.seq - 1} missing`);
      if (batch !== null) problem(o.seq, 'modified', 'a gap inside a batch');
    }
    rep.lastSeq = o.seq;
    const key = keys.get(o.kid);
    if (isStoredV2(data)) {
      rep.v2++;
      const p = parseStoredV2(data);
      if (p === null || canonical(o) !== `${data.slice(0, p.end)}}`) {
        problem(o.seq, 'malformed', 'not a v2 stored form over canonical bytes');
        continue;
      }
      const leaf = leafHasher.leafOfStored(data, p.end);
      if (leaf !== p.leaf) problem(o.seq, 'modified', 'leaf');
      if (batch === null) batch = { first: o.seq, kid: o.kid, leaves: [] };
      else if (batch.kid !== o.kid) problem(o.seq, 'modified', 'kid changes inside a batch');
      batch.leaves.push(leaf);
      merkle.pushLeaf(leaf);
      if (p.seal !== null) {
        rep.batches++;
        if (p.sealFirst !== batch.first) problem(o.seq, 'modified', 'seal_first');
        if (key === undefined) problem(batch.first, 'wrong_key', `key ${batch.kid} not in the keyring`);
        else if (sealOf(key, prev, batch.first, o.seq, rootOfLeaves(batch.leaves)) !== p.seal) problem(batch.first, 'modified', 'seal');
        prev = p.seal;
        batch = null;
      }
    } else {
      if (batch !== null) problem(o.seq, 'modified', 'a v1 record inside a v2 batch');
      if (o.prev_hash !== prev) problem(o.seq, 'modified', 'prev_hash');
      v1.load(prev, canonical(o));
      if (key === undefined) problem(o.seq, 'wrong_key', `key ${o.kid} not in the keyring`);
      else if (v1.mac(key) !== o.mac) problem(o.seq, 'modified', 'mac');
      if (v1.hash(o.mac as string) !== o.hash) problem(o.seq, 'modified', 'hash');
      prev = o.hash as string;
      merkle.push(prev);
    }
    checkpointAt(o.seq);
  }
  if (batch !== null) problem(batch.first, 'truncated', 'a batch without its seal');
  rep.problems.sort((a, b) => a.seq - b.seq);
  return rep;
}
