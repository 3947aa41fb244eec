/**
 * One stream's chain state: the next sequence number, the previous record's hash and the
 * Merkle frontier. `seal` turns a body with its (already assigned) seq into a chained
 * record; sealing must happen in seq order.
 */
import { canonical } from './canonical.js';
import { RecordHasher } from './chain-hash.js';
import type { Keyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import type { AuditBody, ChainedRecord } from './record.js';
import type { StoreRecord } from './store/types.js';

/**
 * The stored JSON of a record sealed in this process (saves a JSON.stringify per record).
 * A symbol-keyed member, not a WeakMap: JSON.stringify and the stores never see it, and a
 * WeakMap of every in-flight record cost the collector more than the member does.
 */
const DATA: unique symbol = Symbol('gatehouse.audit.data');
type Sealed = ChainedRecord & { [DATA]?: string };

/** The JSON a store keeps for a record: all canonical members plus prev_hash, mac, hash. */
export function recordData(r: ChainedRecord): string {
  return (r as Sealed)[DATA] ?? JSON.stringify(r);
}

/** A v1 record as the store takes it. */
export function v1StoreRecord(r: ChainedRecord): StoreRecord {
  return { stream: r.stream, seq: r.seq, time: r.time, subject: r.subject, decision: r.decision, hash: r.hash, data: recordData(r) };
}

export function v1StoreRecords(rs: readonly ChainedRecord[]): StoreRecord[] {
  return rs.map(v1StoreRecord);
}

export class Chain {
  readonly stream: string;
  /** Seq of the last sealed record (0 before the first). */
  seq: number;
  /** The last sealed record's hash (the genesis hash before the first), lowercase hex. */
  prev: string;
  readonly merkle: MerkleAccumulator;
  private readonly hasher = new RecordHasher();

  constructor(stream: string, seq: number, prev: string, merkle: MerkleAccumulator) {
    this.stream = stream;
    this.seq = seq;
    this.prev = prev;
    this.merkle = merkle;
  }

  seal(body: AuditBody, seq: number, keys: Keyring): ChainedRecord {
    const r = body as ChainedRecord;
    r.v = 1;
    r.stream = this.stream;
    r.seq = seq;
    r.kid = keys.activeId;
    const canon = canonical(r);
    const hs = this.hasher;
    hs.load(this.prev, canon);
    const m = hs.mac(keys.active);
    const h = hs.hash(m);
    r.prev_hash = this.prev;
    r.mac = m;
    r.hash = h;
    // The stored form: the canonical JSON plus the three chain members (no second stringify).
    (r as Sealed)[DATA] = `${canon.slice(0, -1)},"prev_hash":"${r.prev_hash}","mac":"${m}","hash":"${h}"}`;
    this.prev = h;
    this.seq = seq;
    this.merkle.push(h);
    return r;
  }
}
