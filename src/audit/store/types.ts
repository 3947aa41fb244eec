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

export interface AuditStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Creates tables if missing. */
  init(): Promise<void>;
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
  close(): Promise<void>;
}
