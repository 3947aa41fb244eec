/**
 * Proofs against signed checkpoints (docs/audit.md, "Proofs"), RFC 9162 §2.1.3–2.1.4 over
 * the checkpoints' Merkle tree. Its leaves, in seq order, are those of the stream's records
 * that exist: H(0x00 ‖ hash) for a v1 record, H(0x00 ‖ canonical) — the record's `leaf` —
 * for a v2 record (v2.ts), so a stream that switched from v1 to v2 is one tree.
 *
 * - inclusion: one record (what it says, so its content is checked too), its leaf index
 *   and the audit path to the root a signed checkpoint carries;
 * - consistency: two signed checkpoints of a stream and the path showing the newer tree
 *   extends the older one — an auditor who kept an old checkpoint detects a rewritten
 *   history (no consistency proof from its root exists).
 *
 * Built from a store, an archive, or an archive followed by the store's newer records
 * (archive/proof-source.ts); verifying needs the proof file and the checkpoint public key only.
 */
import type { KeyObject } from 'node:crypto';
import { canonical, isHex32 } from './canonical.js';
import { leafHex, RecordHasher } from './chain-hash.js';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import { consistencyPath, inclusionPath, verifyConsistency, verifyInclusion } from './merkle.js';
import { CANONICAL_FIELDS, type AuditBody, type ChainedRecord, type ChainFields } from './record.js';
import { storeRecords } from './sources.js';
import type { AuditStore } from './store/types.js';
import { isStoredV2, LeafHasher, parseStoredV2, V2 } from './v2.js';

export const PROOF_FORMAT = 'gatehouse-audit-proof';

/**
 * A v2 record in a proof: its canonical members and its `leaf`; at the checkpoint's seq
 * also its batch's `seal` (the chain value the checkpoint signs as head_hash). The stored
 * form's `seal_first`, and a seal anywhere else, are left out: without the HMAC key
 * nothing can check them, and a proof carries nothing it does not check.
 */
export interface V2ProofRecord extends AuditBody, ChainFields {
  leaf: string;
  seal?: string;
}

export type ProofRecord = ChainedRecord | V2ProofRecord;

export interface InclusionProof {
  readonly format: typeof PROOF_FORMAT;
  readonly v: 1;
  readonly type: 'inclusion';
  /** The record: v1 as stored (every member, chain fields included); v2 as V2ProofRecord says. */
  readonly record: ProofRecord;
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

/** Where a proof's leaves and checkpoints come from: a store, an archive, or both. */
export interface ProofSource {
  /** The stream's signed checkpoints (any order; duplicates allowed). */
  checkpoints(stream: string): Promise<Checkpoint[]>;
  /** The stream's records in their stored form, in seq order, from seq 1. */
  records(stream: string): AsyncIterable<string>;
}

/** The store's records of a stream (all of them: a stream pruned locally is proved from its archive). */
export function storeProofSource(store: AuditStore): ProofSource {
  return {
    checkpoints: (stream) => store.checkpoints(stream),
    async *records(stream) {
      if ((await store.prunedTo(stream)) !== null) throw new Error(`stream ${stream}: records were pruned locally; prove from the archive (gatehouse audit prove --archive)`);
      yield* storeRecords(store, stream);
    },
  };
}

const SEQ = /[{,]"seq":([0-9]{1,16})[,}]/;

/**
 * A stored record's seq and Merkle leaf. A v2 record's is its stored `leaf` (the verifier
 * recomputes it from the content); a v1 record's is H(0x00 ‖ hash).
 */
export function leafOfStored(data: string): { seq: number; leaf: string } {
  if (isStoredV2(data)) {
    const p = parseStoredV2(data);
    const m = SEQ.exec(data);
    if (p === null || m === null) throw new Error('a v2 record is not in its stored form');
    return { seq: Number(m[1]), leaf: p.leaf };
  }
  const rec = JSON.parse(data) as ChainedRecord;
  if (!isHex32(rec.hash) || !Number.isSafeInteger(rec.seq)) throw new Error(`a record lacks its seq or hash`);
  return { seq: rec.seq, leaf: leafHex(rec.hash) };
}

/**
 * The stream's leaves and seqs in seq order through seq `upTo` (the tree a checkpoint
 * covers: nothing after it is read), and the stored text of the record `keep` (if any).
 */
async function leaves(source: ProofSource, stream: string, keep: number | null, upTo: number): Promise<{ seqs: number[]; leaves: string[]; kept: string | undefined }> {
  const seqs: number[] = [];
  const out: string[] = [];
  let kept: string | undefined;
  for await (const data of source.records(stream)) {
    let l: { seq: number; leaf: string };
    try {
      l = leafOfStored(data);
    } catch (err) {
      throw new Error(`stream ${stream}, after seq ${seqs[seqs.length - 1] ?? 0}: ${(err as Error).message}: run gatehouse audit verify`, { cause: err });
    }
    // Storage order is seq order in an intact stream; a tampered one fails `verify` anyway.
    if (seqs.length > 0 && l.seq <= (seqs[seqs.length - 1] as number)) throw new Error(`stream ${stream} is not in seq order at seq ${l.seq}: run gatehouse audit verify`);
    if (l.seq > upTo) break;
    seqs.push(l.seq);
    out.push(l.leaf);
    if (l.seq === keep) kept = data;
  }
  return { seqs, leaves: out, kept };
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

async function checkpointAt(source: ProofSource, stream: string, seq: number | null, atLeast: number): Promise<Checkpoint> {
  const cps = (await source.checkpoints(stream)).filter((c) => c.stream === stream).sort((a, b) => a.seq - b.seq);
  const c = seq === null ? cps[cps.length - 1] : cps.find((x) => x.seq === seq);
  if (c === undefined) throw new Error(seq === null ? `stream ${stream} has no checkpoint` : `stream ${stream} has no checkpoint at seq ${seq}`);
  if (c.seq < atLeast) throw new Error(`the checkpoint at seq ${c.seq} does not cover seq ${atLeast} yet (wait for the next checkpoint)`);
  return c;
}

/** The record as an inclusion proof carries it (V2ProofRecord says why a v2 record is trimmed). */
function proofRecord(data: string, atHead: boolean): ProofRecord {
  const r = JSON.parse(data) as V2ProofRecord & { seal_first?: number };
  if (r.v !== V2) return r as unknown as ChainedRecord;
  delete r.seal_first;
  if (!atHead) delete r.seal;
  return r;
}

/** `audit prove --record stream:seq [--checkpoint SEQ]`: against the latest checkpoint by default. */
export async function proveInclusion(source: ProofSource, stream: string, seq: number, checkpointSeq: number | null): Promise<InclusionProof> {
  const cp = await checkpointAt(source, stream, checkpointSeq, seq);
  const l = await leaves(source, stream, seq, cp.seq);
  if (l.kept === undefined) throw new Error(`stream ${stream} has no record with seq ${seq}`);
  const n = sizeAt(l.seqs, cp.seq);
  const m = sizeAt(l.seqs, seq) - 1;
  return { format: PROOF_FORMAT, v: 1, type: 'inclusion', record: proofRecord(l.kept, seq === cp.seq), leaf_index: m, tree_size: n, path: inclusionPath(l.leaves.slice(0, n), m), checkpoint: cp };
}

/**
 * `audit prove --consistency --stream S --from SEQ|FILE [--to SEQ]`: from an older
 * checkpoint (one the auditor holds, or the source's at that seq) to a newer one (latest by
 * default). The path is computed from the records the source holds now, so it verifies
 * against the older root only if the history up to it is unchanged.
 */
export async function proveConsistency(source: ProofSource, stream: string, first: Checkpoint | number, toSeq: number | null): Promise<ConsistencyProof> {
  const older = typeof first === 'number' ? await checkpointAt(source, stream, first, first) : first;
  if (older.stream !== stream) throw new Error(`the first checkpoint is of stream ${older.stream}, not ${stream}`);
  const newer = await checkpointAt(source, stream, toSeq, older.seq);
  const l = await leaves(source, stream, null, newer.seq);
  const m = sizeAt(l.seqs, older.seq);
  const n = sizeAt(l.seqs, newer.seq);
  if (m < 1) throw new Error('the first checkpoint covers no record');
  return { format: PROOF_FORMAT, v: 1, type: 'consistency', first: older, first_size: m, second: newer, second_size: n, path: consistencyPath(l.leaves.slice(0, n), m) };
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

const V2_MEMBERS: ReadonlySet<string> = new Set<string>([...CANONICAL_FIELDS, 'llm', 'leaf', 'seal']);

/** The chain value after a record: v1 its hash, v2 its batch's seal (carried at a checkpoint's seq only). */
function chainValue(r: ProofRecord): string | undefined {
  return r.v === V2 ? (r as V2ProofRecord).seal : (r as ChainedRecord).hash;
}

/**
 * The record's Merkle leaf, recomputed from what it says (so the proof covers its content),
 * or null with the problems. v1: its hash from prev_hash, canonical form and mac, leaf
 * H(0x00 ‖ hash). v2: H(0x00 ‖ canonical), which must be its `leaf`; a member the proof
 * cannot check (V2ProofRecord) is refused.
 */
function recordLeaf(r: ProofRecord, checkpointSeq: number, problems: string[]): string | null {
  const v2 = r.v === V2;
  if (v2) {
    const x = r as V2ProofRecord;
    const extra = Object.keys(x).filter((k) => !V2_MEMBERS.has(k));
    if (extra.length > 0) return (problems.push(`the record has members the proof does not cover: ${extra.join(', ')}`), null);
    if (!isHex32(x.leaf) || (x.seal !== undefined && !isHex32(x.seal))) return (problems.push('the record lacks its chain fields'), null);
    if (x.seal !== undefined && x.seq !== checkpointSeq) return (problems.push(`record ${x.seq} carries a seal, which a proof covers only at the checkpoint's seq ${checkpointSeq}`), null);
  } else {
    const x = r as ChainedRecord;
    if (!isHex32(x.prev_hash) || !isHex32(x.mac) || !isHex32(x.hash)) return (problems.push('the record lacks its chain fields'), null);
  }
  let canon: string;
  try {
    canon = canonical(r as ChainedRecord);
  } catch (err) {
    return (problems.push(`the record: ${(err as Error).message}`), null);
  }
  if (v2) {
    const leaf = new LeafHasher().leaf(canon);
    if (leaf !== (r as V2ProofRecord).leaf) problems.push(`record ${r.seq}: its content does not match its leaf`);
    return leaf;
  }
  const x = r as ChainedRecord;
  const h = new RecordHasher();
  h.load(x.prev_hash, canon);
  if (h.hash(x.mac) !== x.hash) problems.push(`record ${x.seq}: its content does not match its hash`);
  return leafHex(x.hash);
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
    if (r === null || typeof r !== 'object') return ['the proof has no record'];
    const leaf = recordLeaf(r, p.checkpoint.seq, problems);
    if (leaf === null) return problems;
    if (r.stream !== p.checkpoint.stream) problems.push(`the record is of stream ${JSON.stringify(r.stream)}, the checkpoint of ${JSON.stringify(p.checkpoint.stream)}`);
    if (!(r.seq <= p.checkpoint.seq)) problems.push(`record ${r.seq} is after the checkpoint's seq ${p.checkpoint.seq}`);
    if (r.seq === p.checkpoint.seq && chainValue(r) !== p.checkpoint.head_hash) problems.push(`record ${r.seq} is not the checkpoint's head: its ${r.v === V2 ? 'seal' : 'hash'} is not the checkpoint's head_hash`);
    if (held !== null && (held.stream !== p.checkpoint.stream || held.seq !== p.checkpoint.seq || held.merkle_root !== p.checkpoint.merkle_root)) problems.push('the proof is not against the held checkpoint');
    if (!ints(p.leaf_index) || !ints(p.tree_size) || p.tree_size > p.checkpoint.seq || p.leaf_index >= p.tree_size || p.leaf_index > r.seq - 1) problems.push('leaf_index / tree_size are out of range');
    else if (!verifyInclusion(leaf, p.leaf_index, p.tree_size, p.path, p.checkpoint.merkle_root)) problems.push(`record ${r.seq} is not in the tree under the checkpoint at seq ${p.checkpoint.seq}: the inclusion path does not lead to its Merkle root`);
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
