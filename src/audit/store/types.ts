/**
 * The audit store: append-only records and checkpoints, several streams. SQLite
 * (embedded) and PostgreSQL implement it; one contract suite (contract.test.ts) runs
 * against both. Records are kept whole (`data`, the record's stored form) next to a few
 * indexed columns for queries; `id` is the storage order the verifier reads in.
 *
 * A stream may hold v1 records (older gatehouse versions, one hash chain link per record)
 * followed by v2 records (v2.ts: one leaf per record, one seal per batch); the store tells
 * them apart by their stored form and answers in chain terms either way: `head` gives the
 * chain value, `leavesAfter` the Merkle leaves.
 */
import type { Checkpoint } from '../checkpoint.js';
import type { ChainedRecord, Decision } from '../record.js';

/**
 * One record to append: the indexed columns and the stored form. The store keeps `data`
 * byte for byte (it is what the verifier hashes); the columns only serve queries and
 * `leavesAfter`, and must agree with `data` (the SQLite store reads them out of it).
 */
export interface StoreRecord {
  readonly stream: string;
  readonly seq: number;
  readonly time: string;
  readonly subject: string | null;
  readonly decision: Decision | null;
  /** v1: the record hash; v2: the record's leaf hash. Lowercase hex. */
  readonly hash: string;
  /** v1: recordData(r) (chain.ts); v2: storedV2(...) (v2.ts). */
  readonly data: string;
}

export interface StoredCheckpoint {
  readonly checkpoint: Checkpoint;
  /** The Merkle frontier at that seq (unsigned; lets a restart resume without re-reading the stream). */
  readonly frontier: { size: number; stack: Array<string | null> };
}

export interface StreamHead {
  readonly seq: number;
  /**
   * The chain value at `seq`: a v1 record's hash, a v2 batch's seal, or the chain value a
   * prune recorded (a stream whose records were all pruned).
   */
  readonly hash: string;
}

export interface RecordQuery {
  readonly from?: string;
  readonly to?: string;
  readonly subject?: string;
  readonly decision?: Decision;
  readonly stream?: string;
  readonly limit: number;
}

/**
 * Archive progress (docs/audit.md, "Archive"): the stream is archived, and read back
 * verified, through `seq`. Kept in the store next to the records (append-only).
 */
export interface ArchiveAnchor {
  readonly stream: string;
  readonly seq: number;
  /** The chain value at `seq` (v1: the record hash; v2: the seal of the batch ending there). */
  readonly hash: string;
  /** The Merkle frontier over records 1..seq. */
  readonly frontier: { size: number; stack: Array<string | null> };
  /** The signed checkpoint at `seq` (segments end at checkpoints). */
  readonly checkpoint: Checkpoint;
  readonly segment: {
    readonly index: number;
    readonly first_seq: number;
    readonly records: number;
    readonly manifest_key: string;
    readonly manifest_sha256: string;
    readonly data_key: string;
    readonly data_sha256: string;
  };
  /** Where: `s3://bucket/prefix` or a directory. */
  readonly location: string;
  readonly archived_at: string;
  /** Storage position (the store's row id) of the segment's last record: the next segment reads after it. */
  readonly row_id: number;
}

export interface AuditStore {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * Opens the store for use without changing its schema. PostgreSQL: checks that
   * `gatehouse audit migrate` has set the schema up at the version this build needs, and
   * fails with a message naming the command otherwise (the gateway and the verifier never
   * run DDL: they run as roles that may not). SQLite: opens the file (the embedded store's
   * file belongs to the gateway: it creates its tables, unless opened read-only).
   */
  init(): Promise<void>;
  /** Creates or upgrades the schema (PostgreSQL: as its owner; docs/audit.md "Roles"). */
  migrate(): Promise<void>;
  /** Appends records and checkpoints in one transaction (all or nothing). */
  append(records: readonly StoreRecord[], checkpoints: readonly StoredCheckpoint[]): Promise<void>;
  /** The highest seq of a stream and the chain value there, or null for an empty stream. */
  head(stream: string): Promise<StreamHead | null>;
  lastCheckpoint(stream: string): Promise<StoredCheckpoint | null>;
  /**
   * The Merkle leaf hashes (hex) of the records with seq > after, in seq order (frontier
   * rebuild): H(0x00 ‖ hash) for a v1 record, its `leaf` for a v2 record.
   */
  leavesAfter(stream: string, after: number): Promise<string[]>;
  streams(): Promise<string[]>;
  /** Raw record JSON of one stream in storage order, id > afterId. */
  readRaw(stream: string, afterId: number, limit: number): Promise<Array<{ id: number; data: string }>>;
  checkpoints(stream: string): Promise<Checkpoint[]>;
  query(q: RecordQuery): Promise<ChainedRecord[]>;
  /** Records archive progress (append-only). */
  addArchiveAnchor(a: ArchiveAnchor): Promise<void>;
  /** A stream's archive anchors, in seq order. */
  archiveAnchors(stream: string): Promise<ArchiveAnchor[]>;
  /**
   * Deletes the stream's records up to and including `seq` and its checkpoints before it,
   * after recording the prune; refused without an anchor at exactly `seq` whose hash is the
   * chain value there (PostgreSQL: only the pruner role or the owner may). Returns the number of records deleted (0 when
   * already pruned that far).
   */
  prune(stream: string, seq: number): Promise<number>;
  /** The anchor of the latest prune — where the stream's stored records begin — or null. */
  prunedTo(stream: string): Promise<ArchiveAnchor | null>;
  close(): Promise<void>;
}
