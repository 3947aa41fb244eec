/**
 * Proofs against signed checkpoints (docs/audit.md, "Proofs"), RFC 9162 §2.1.3–2.1.4 over
 * the checkpoints' Merkle tree (leaf entries: the record hashes of the stream, in seq
 * order, of the records that exist):
 *
 * - inclusion: one record (its full stored form, so its content is checked too), its leaf
 *   index and the audit path to the root a signed checkpoint carries;
 * - consistency: two signed checkpoints of a stream and the path showing the newer tree
 *   extends the older one — an auditor who kept an old checkpoint detects a rewritten
 *   history (no consistency proof from its root exists).
 *
 * Verifying needs the proof file and the checkpoint public key only.
 */
import type { KeyObject } from 'node:crypto';
import { canonical, isHex32 } from './canonical.js';
import { RecordHasher } from './chain-hash.js';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import { consistencyPath, inclusionPath, verifyConsistency, verifyInclusion } from './merkle.js';
import type { ChainedRecord } from './record.js';
import type { AuditStore } from './store/types.js';

export const PROOF_FORMAT = 'gatehouse-audit-proof';

export interface InclusionProof {
  readonly format: typeof PROOF_FORMAT;
  readonly v: 1;
  readonly type: 'inclusion';
  /** The record as stored (every member, chain fields included). */
  readonly record: ChainedRecord;
  /** Its position among the leaves (0-based). */
  readonly leaf_index: number;
  /** Leaves under the checkpoint's root: the records 1..checkpoint.seq that exist. */
  readonly tree_size: number;
  readonly path: readonly string[];
  readonly checkpoint: Checkpoint;
}

export interface ConsistencyProof {
  readonly format: typeof PROOF_FORMAT;
  readonly v: 1;
  readonly type: 'consistency';
  readonly first: Checkpoint;
  readonly first_size: number;
  readonly second: Checkpoint;
  readonly second_size: number;
  readonly path: readonly string[];
}

export type Proof = InclusionProof | ConsistencyProof;

/** The stream's leaf entries (record hashes) and seqs in seq order, from the store. */
async function leaves(store: AuditStore, stream: string): Promise<{ seqs: number[]; hashes: string[]; data: Map<number, string> }> {
  if ((await store.prunedTo(stream)) !== null) throw new Error(`stream ${stream}: records were pruned locally; prove from the archive's store before pruning`);
  const seqs: number[] = [];
  const hashes: string[] = [];
  const data = new Map<number, string>();
  let after = 0;
  for (;;) {
    const rows = await store.readRaw(stream, after, 10_000);
    for (const r of rows) {
      const rec = JSON.parse(r.data) as ChainedRecord;
      seqs.push(rec.seq);
      hashes.push(rec.hash);
      data.set(rec.seq, r.data);
    }
    if (rows.length < 10_000) break;
    after = (rows[rows.length - 1] as { id: number }).id;
  }
  // Storage order is seq order in an intact stream; a tampered one fails `verify` anyway.
  for (let i = 1; i < seqs.length; i++) if ((seqs[i] as number) <= (seqs[i - 1] as number)) throw new Error(`stream ${stream} is not in seq order at seq ${seqs[i]}: run gatehouse audit verify`);
  return { seqs, hashes, data };
}

function sizeAt(seqs: readonly number[], seq: number): number {
  let lo = 0;
  let hi = seqs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((seqs[mid] as number) <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

async function checkpointAt(store: AuditStore, stream: string, seq: number | null, atLeast: number): Promise<Checkpoint> {
  const cps = (await store.checkpoints(stream)).filter((c) => c.stream === stream).sort((a, b) => a.seq - b.seq);
  const c = seq === null ? cps[cps.length - 1] : cps.find((x) => x.seq === seq);
  if (c === undefined) throw new Error(seq === null ? `stream ${stream} has no checkpoint` : `stream ${stream} has no checkpoint at seq ${seq}`);
  if (c.seq < atLeast) throw new Error(`the checkpoint at seq ${c.seq} does not cover seq ${atLeast} yet (wait for the next checkpoint)`);
  return c;
}

/** `audit prove --record stream:seq [--checkpoint SEQ]`: against the latest checkpoint by default. */
export async function proveInclusion(store: AuditStore, stream: string, seq: number, checkpointSeq: number | null): Promise<InclusionProof> {
  const cp = await checkpointAt(store, stream, checkpointSeq, seq);
  const l = await leaves(store, stream);
  const text = l.data.get(seq);
  if (text === undefined) throw new Error(`stream ${stream} has no record with seq ${seq}`);
  const n = sizeAt(l.seqs, cp.seq);
  const m = sizeAt(l.seqs, seq) - 1;
  return { format: PROOF_FORMAT, v: 1, type: 'inclusion', record: JSON.parse(text) as ChainedRecord, leaf_index: m, tree_size: n, path: inclusionPath(l.hashes.slice(0, n), m), checkpoint: cp };
}

/**
 * `audit prove --consistency --stream S --from SEQ|FILE [--to SEQ]`: from an older
 * checkpoint (one the auditor holds, or the store's at that seq) to a newer one (latest by
 * default). The path is computed from the records the store holds now, so it verifies
 * against the older root only if the history up to it is unchanged.
 */
export async function proveConsistency(store: AuditStore, stream: string, first: Checkpoint | number, toSeq: number | null): Promise<ConsistencyProof> {
  const older = typeof first === 'number' ? await checkpointAt(store, stream, first, first) : first;
  if (older.stream !== stream) throw new Error(`the first checkpoint is of stream ${older.stream}, not ${stream}`);
  const newer = await checkpointAt(store, stream, toSeq, older.seq);
  const l = await leaves(store, stream);
  const m = sizeAt(l.seqs, older.seq);
  const n = sizeAt(l.seqs, newer.seq);
  if (m < 1) throw new Error('the first checkpoint covers no record');
  return { format: PROOF_FORMAT, v: 1, type: 'consistency', first: older, first_size: m, second: newer, second_size: n, path: consistencyPath(l.hashes.slice(0, n), m) };
}

const ints = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

function checkCheckpoint(c: unknown, name: string, pub: KeyObject, problems: string[]): c is Checkpoint {
  const o = c as Checkpoint | null;
  if (o === null || typeof o !== 'object' || o.v !== 1 || !isHex32(o.merkle_root) || !isHex32(o.head_hash) || typeof o.stream !== 'string' || !ints(o.seq) || typeof o.signature !== 'string') {
    problems.push(`${name}: not a checkpoint`);
    return false;
  }
  if (!verifyCheckpoint(o, pub)) {
    problems.push(`${name}: its signature does not verify with the public key`);
    return false;
  }
  return true;
}

/**
 * `audit verify --proof FILE --public-key PEM [--checkpoint HELD.json]`: every problem
 * found, none when the proof holds. `held`: a checkpoint the auditor kept; a consistency
 * proof must start from it (same stream, seq and root) — otherwise the log's history is
 * not the one the auditor saw.
 */
export function verifyProof(proof: unknown, pub: KeyObject, held: Checkpoint | null = null): string[] {
  const problems: string[] = [];
  const p = proof as Proof | null;
  if (p === null || typeof p !== 'object' || p.format !== PROOF_FORMAT || p.v !== 1) return ['not a gatehouse audit proof'];
  if (held !== null && !checkCheckpoint(held, 'the held checkpoint', pub, problems)) return problems;
  if (!Array.isArray(p.path) || !p.path.every(isHex32)) return ['the path is not a list of 32-byte hex hashes'];
  if (p.type === 'inclusion') {
    if (!checkCheckpoint(p.checkpoint, 'the checkpoint', pub, problems)) return problems;
    const r = p.record;
    if (r === null || typeof r !== 'object' || !isHex32(r.prev_hash) || !isHex32(r.mac) || !isHex32(r.hash)) return ['the record lacks its chain fields'];
    let canon: string;
    try {
      canon = canonical(r);
    } catch (err) {
      return [`the record: ${(err as Error).message}`];
    }
    const h = new RecordHasher();
    h.load(r.prev_hash, canon);
    if (h.hash(r.mac) !== r.hash) problems.push(`record ${r.seq}: its content does not match its hash`);
    if (r.stream !== p.checkpoint.stream) problems.push(`the record is of stream ${JSON.stringify(r.stream)}, the checkpoint of ${JSON.stringify(p.checkpoint.stream)}`);
    if (!(r.seq <= p.checkpoint.seq)) problems.push(`record ${r.seq} is after the checkpoint's seq ${p.checkpoint.seq}`);
    if (r.seq === p.checkpoint.seq && r.hash !== p.checkpoint.head_hash) problems.push(`record ${r.seq} is not the checkpoint's head`);
    if (held !== null && (held.stream !== p.checkpoint.stream || held.seq !== p.checkpoint.seq || held.merkle_root !== p.checkpoint.merkle_root)) problems.push('the proof is not against the held checkpoint');
    if (!ints(p.leaf_index) || !ints(p.tree_size) || p.tree_size > p.checkpoint.seq || p.leaf_index >= p.tree_size || p.leaf_index > r.seq - 1) problems.push('leaf_index / tree_size are out of range');
    else if (!verifyInclusion(r.hash, p.leaf_index, p.tree_size, p.path, p.checkpoint.merkle_root)) problems.push(`record ${r.seq} is not in the tree under the checkpoint at seq ${p.checkpoint.seq}: the inclusion path does not lead to its Merkle root`);
    return problems;
  }
  if (p.type === 'consistency') {
    const a = checkCheckpoint(p.first, 'the first checkpoint', pub, problems);
    const b = checkCheckpoint(p.second, 'the second checkpoint', pub, problems);
    if (!a || !b) return problems;
    if (p.first.stream !== p.second.stream) problems.push('the two checkpoints are of different streams');
    if (held !== null && (held.stream !== p.first.stream || held.seq !== p.first.seq || held.merkle_root !== p.first.merkle_root)) {
      problems.push(`the log's checkpoint at seq ${p.first.seq} is not the one held (root ${held.merkle_root} at seq ${held.seq}): its history was rewritten, or the proof starts elsewhere`);
    }
    if (!ints(p.first_size) || !ints(p.second_size) || p.first_size < 1 || p.first_size > p.second_size || p.first_size > p.first.seq || p.second_size > p.second.seq || p.first.seq > p.second.seq) problems.push('first_size / second_size are out of range');
    else if (!verifyConsistency(p.first_size, p.second_size, p.first.merkle_root, p.second.merkle_root, p.path)) problems.push(`the checkpoint at seq ${p.second.seq} does not extend the one at seq ${p.first.seq}: the history up to seq ${p.first.seq} was rewritten`);
    return problems;
  }
  return ['unknown proof type'];
}
