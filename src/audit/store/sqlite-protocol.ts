/**
 * The messages between the SQLite audit store (sqlite.ts, on the caller's thread) and its
 * worker thread (sqlite-worker.ts, which owns the better-sqlite3 connection).
 *
 * Cost is what shapes them: a structured clone walks every property of every object, so
 * neither records nor rows cross as objects. A batch to append crosses in shared memory
 * (AppendPayload). Rows read cross as one packed string plus a Float64Array of lengths
 * (transferred, not copied); cloning one flat string is a copy of its bytes, and slicing
 * it apart on the other side makes no copies at all.
 */
import type { RecordQuery } from './types.js';

/** Strings packed end to end; `lens[i]` is string i's length in UTF-16 units, -1 for null. */
export interface PackedStrings {
  readonly text: string;
  readonly lens: Float64Array<ArrayBuffer>;
}

/**
 * One append (one transaction), written by the store into two shared buffers it reuses
 * (sqlite.ts: a fresh megabyte-sized buffer per batch costs page faults on both threads).
 * Per record, `RECORD_NUMS` numbers in `nums`: the seq and the byte length of the record's
 * stored form (its `data`), UTF-8, as the records follow one another in `text`. The indexed
 * columns (stream, time, subject, decision, and hash: a v1 record's `hash`, a v2 record's
 * `leaf`) are read out of that JSON by the worker:
 * one string to copy per record instead of six on the caller's thread, and the columns
 * cannot disagree with the record. The store does not touch either buffer again before
 * the reply.
 */
export interface AppendPayload {
  readonly count: number;
  readonly nums: SharedArrayBuffer;
  readonly text: SharedArrayBuffer;
  /** Bytes of `text` in use. */
  readonly used: number;
  /** Per checkpoint four values: stream, seq, checkpoint JSON, frontier JSON. */
  readonly cps: Array<string | number>;
}

export const RECORD_NUMS = 2;

export type Request =
  | { readonly id: number; readonly op: 'ping' }
  | { readonly id: number; readonly op: 'append'; readonly batch: AppendPayload }
  | { readonly id: number; readonly op: 'head'; readonly stream: string }
  | { readonly id: number; readonly op: 'lastCheckpoint'; readonly stream: string }
  | { readonly id: number; readonly op: 'leavesAfter'; readonly stream: string; readonly after: number }
  | { readonly id: number; readonly op: 'streams' }
  | { readonly id: number; readonly op: 'readRaw'; readonly stream: string; readonly afterId: number; readonly limit: number }
  | { readonly id: number; readonly op: 'checkpoints'; readonly stream: string }
  | { readonly id: number; readonly op: 'query'; readonly q: RecordQuery }
  | { readonly id: number; readonly op: 'addAnchor'; readonly stream: string; readonly seq: number; readonly data: string }
  | { readonly id: number; readonly op: 'anchors'; readonly stream: string }
  | { readonly id: number; readonly op: 'prune'; readonly stream: string; readonly seq: number }
  | { readonly id: number; readonly op: 'prunedTo'; readonly stream: string }
  | { readonly id: number; readonly op: 'close' };

type WithoutId<R> = R extends unknown ? Omit<R, 'id'> : never;
/** A request before the store numbers it. */
export type RequestBody = WithoutId<Request>;

/** What each operation answers with. */
export interface Results {
  ping: null;
  append: null;
  head: { seq: number; hash: string } | null;
  lastCheckpoint: { data: string; frontier: string } | null;
  /** The Merkle leaf hashes (hex), packed. */
  leavesAfter: PackedStrings;
  streams: string[];
  /** The record JSON, packed; `ids` the matching row ids. */
  readRaw: PackedStrings & { readonly ids: Float64Array<ArrayBuffer> };
  /** The checkpoint JSON, packed. */
  checkpoints: PackedStrings;
  /** The record JSON, packed. */
  query: PackedStrings;
  addAnchor: null;
  /** The anchors' JSON, packed. */
  anchors: PackedStrings;
  /** Records deleted. */
  prune: number;
  /** The JSON of the anchor the latest prune names. */
  prunedTo: string | null;
  close: null;
}

export type Reply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly code: string | null };

/** Packs strings (or nulls) into one string and their lengths. */
export function packStrings(values: ReadonlyArray<string | null>): PackedStrings {
  const lens = new Float64Array(values.length);
  const parts: string[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) lens[i] = -1;
    else {
      lens[i] = v.length;
      parts.push(v);
    }
  }
  // join builds one flat string in one pass (a chain of += would build a rope that the
  // structured clone has to flatten anyway).
  return { text: parts.join(''), lens };
}

/** The inverse of packStrings; throws on a payload whose lengths do not add up. */
export function unpackStrings(p: PackedStrings): Array<string | null> {
  const out = new Array<string | null>(p.lens.length);
  let pos = 0;
  for (let i = 0; i < p.lens.length; i++) {
    const n = p.lens[i] as number;
    if (n < 0) out[i] = null;
    else {
      out[i] = p.text.slice(pos, pos + n);
      pos += n;
    }
  }
  if (pos !== p.text.length) throw new Error('audit store (sqlite): malformed packed strings');
  return out;
}
