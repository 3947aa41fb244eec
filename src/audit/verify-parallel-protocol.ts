/** Messages between the parallel verifier (verify-parallel.ts) and its workers (verify-worker.ts). */
import type { Config, PostgresConfig } from '../config/schema.js';

/** Where a worker reads ranges from: it opens the source itself. */
export type RangeSource =
  | { readonly kind: 'sqlite'; readonly file: string }
  | { readonly kind: 'postgres'; readonly config: PostgresConfig; readonly configDir: string; readonly ca?: Config['ca'] }
  | { readonly kind: 'export'; readonly file: string };

export interface WorkerInit {
  readonly source: RangeSource;
  /** The HMAC keyring as [id, ipad, opad] (chain-hash.ts MacKey), or null: seals are not checked. */
  readonly keys: Array<[string, Uint8Array, Uint8Array]> | null;
}

/**
 * One range: stores — rows with lo < id ≤ hi (hi null: no upper bound) of `stream`, in id
 * order; exports — the bytes [lo, hi) of the file, whole record lines of `stream`.
 */
export interface RangeTask {
  readonly id: number;
  readonly stream: string;
  readonly lo: number;
  readonly hi: number | null;
  readonly seqOffset: number;
  readonly cpSeqs: readonly number[];
}

/** Ends the worker after the tasks before it (its database connection closed first). */
export interface CloseTask {
  readonly close: true;
}
