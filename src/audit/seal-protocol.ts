/**
 * The messages between the audit writer (writer.ts, through sealer.ts, on the gateway's
 * thread) and its seal worker (seal-worker.ts, which owns the chain state).
 *
 * Cost shapes them, as with the SQLite store's worker (store/sqlite-protocol.ts): a batch
 * crosses as the UTF-8 bytes of its canonical forms, written by the gateway's thread
 * straight into a shared buffer it reuses (writing each canonical string there costs less
 * than joining them into one string, which has to flatten every one of them first), and
 * comes back as one string of stored forms and one string of concatenated leaf hashes,
 * which the gateway's thread only slices.
 */

/** The Merkle frontier of a stream (merkle.ts MerkleAccumulator.state()). */
export interface Frontier {
  size: number;
  stack: Array<string | null>;
}

/** Per record of a batch, in `nums`: the UTF-8 byte length and the UTF-16 length of its canonical form. */
export const SEAL_NUMS = 2;

export type SealRequest =
  /** First message: the last sealed seq, the chain value there and the stream's Merkle frontier. */
  | { readonly op: 'init'; readonly seq: number; readonly prev: string; readonly frontier: Frontier }
  /** A key batches may name from now on (its RFC 2104 pad blocks, chain-hash.ts). */
  | { readonly op: 'key'; readonly kid: string; readonly ipad: Uint8Array; readonly opad: Uint8Array }
  /**
   * Seals seqs first..first+count-1 as one batch: their canonical forms (each already
   * carrying its seq, the stream, `kid` and v = 2) follow one another in `text` (UTF-8,
   * `used` bytes), their lengths in `nums`. The buffers are the writer's again once the
   * reply is sent. count = 0 seals nothing: the reply reports the chain state (a
   * checkpoint on a quiet stream). `state`: reply with the stream's Merkle root and
   * frontier after the batch (a checkpoint ends there).
   */
  | {
      readonly op: 'seal';
      readonly id: number;
      readonly first: number;
      readonly count: number;
      readonly kid: string;
      readonly nums: SharedArrayBuffer;
      readonly text: SharedArrayBuffer;
      readonly used: number;
      readonly state: boolean;
    };

export interface SealReply {
  readonly id: number;
  /** The stored forms (v2.ts storedV2), packed end to end; `lens` their UTF-16 lengths. */
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
