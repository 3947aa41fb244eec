/**
 * The messages between the audit writer (writer.ts, through sealer.ts, on the gateway's
 * thread) and its seal worker (seal-worker.ts, which owns the chain state).
 *
 * As with the SQLite store's worker (store/sqlite-protocol.ts), cost shapes them: records
 * cross as one packed string of canonical forms plus a Float64Array of lengths
 * (transferred), and come back as one packed string of stored forms and one string of
 * concatenated leaf hashes; the gateway's thread only slices them.
 */

/** The Merkle frontier of a stream (merkle.ts MerkleAccumulator.state()). */
export interface Frontier {
  size: number;
  stack: Array<string | null>;
}

export type SealRequest =
  /** First message: the chain value and the stream's Merkle frontier to continue from. */
  | { readonly op: 'init'; readonly seq: number; readonly prev: string; readonly frontier: Frontier }
  /** A key batches may name from now on (its RFC 2104 pad blocks, chain-hash.ts). */
  | { readonly op: 'key'; readonly kid: string; readonly ipad: Uint8Array; readonly opad: Uint8Array }
  /**
   * Seals seqs first..first+n-1 (n = lens.length, the canonical forms packed end to end
   * in `text`, each already carrying its seq, the stream, `kid` and v = 2) as one batch.
   * n = 0 seals nothing: the reply reports the chain state (a checkpoint on a quiet stream).
   * `state`: reply with the stream's Merkle root and frontier after the batch (a checkpoint ends there).
   */
  | { readonly op: 'seal'; readonly id: number; readonly first: number; readonly kid: string; readonly text: string; readonly lens: Float64Array<ArrayBuffer>; readonly state: boolean };

export interface SealReply {
  readonly id: number;
  /** The stored forms (v2.ts storedV2), packed end to end; `lens` their lengths. */
  readonly text: string;
  readonly lens: Float64Array<ArrayBuffer>;
  /** The leaf hashes, 64 hex digits each, concatenated. */
  readonly leaves: string;
  /** The last sealed seq and the chain value there (this batch's seal, or the state's). */
  readonly seq: number;
  readonly chain: string;
  /** The stream's Merkle root and frontier after the batch, when asked for. */
  readonly root: string | null;
  readonly frontier: Frontier | null;
}

export type SealResponse = SealReply | { readonly id: number; readonly error: string };
