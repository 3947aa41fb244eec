/**
 * The audit store: append-only records and checkpoints, several streams. SQLite
 * (embedded) and PostgreSQL implement it; one contract suite (contract.test.ts) runs
 * against both. Records are kept whole (`data`, the JSON of the chained record) next to a
 * few indexed columns for queries; `id` is the storage order the verifier reads in.
 */
import type { Checkpoint } from '../checkpoint.js';
import type { ChainedRecord, Decision } from '../record.js';

export interface StoredCheckpoint {
  readonly checkpoint: Checkpoint;
  /** The Merkle frontier at that seq (unsigned; lets a restart resume without re-reading the stream). */
  readonly frontier: { size: number; stack: Array<string | null> };
}

export interface StreamHead {
  readonly seq: number;
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
  /** The record hash at `seq`. */
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
  append(records: readonly ChainedRecord[], checkpoints: readonly StoredCheckpoint[]): Promise<void>;
  /** The highest-seq record of a stream, or null for an empty stream. */
  head(stream: string): Promise<StreamHead | null>;
  lastCheckpoint(stream: string): Promise<StoredCheckpoint | null>;
  /** Record hashes with seq > after, in seq order (Merkle frontier rebuild). */
  hashesAfter(stream: string, after: number): Promise<Buffer[]>;
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
   * after recording the prune; refused without an anchor at exactly `seq` (PostgreSQL: only
   * the pruner role or the owner may). Returns the number of records deleted (0 when
   * already pruned that far).
   */
  prune(stream: string, seq: number): Promise<number>;
  /** The anchor of the latest prune — where the stream's stored records begin — or null. */
  prunedTo(stream: string): Promise<ArchiveAnchor | null>;
  close(): Promise<void>;
}
