/**
 * The archive's object format (docs/audit.md, "Archive"). A segment is two write-once
 * objects under `<prefix><stream>/`:
 *
 *   <index>.<sha256>.jsonl.gz   the records, one per line, each exactly the text the store
 *                               holds (every chain field), gzip; named by its own SHA-256
 *   <index>.manifest.json       what the segment is: stream, index, first/last seq, the
 *                               data object's key, size and SHA-256, the signed checkpoints
 *                               in its range (the last one at last_seq), the verifier's
 *                               state after last_seq, and the previous manifest's SHA-256;
 *                               signed with the checkpoint key
 *
 * `index` is the segment number from 0, written as 12 digits so that key order is index
 * order. The manifests form a hash chain (each names its predecessor's SHA-256), so a
 * missing, altered or reordered segment is named; the records themselves are verified
 * by the audit verifier across segment boundaries, against the signed checkpoints.
 *
 * Nothing here reads a record's fields: records are opaque stored text (the chain format
 * is the verifier's business), which keeps the archive valid for any record version.
 */
import { createHash, verify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzip as gzipCb } from 'node:zlib';
import type { Checkpoint, CheckpointSigner } from '../checkpoint.js';
import type { ChainStart } from '../verify.js';

const gzip = promisify(gzipCb);
const gunzip = promisify(gunzipCb);

export const MANIFEST_FORMAT = 'gatehouse-audit-archive';
const MANIFEST_PREFIX = 'gatehouse-audit-archive-v1:manifest:';

export interface SegmentManifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly v: 1;
  readonly stream: string;
  readonly index: number;
  readonly first_seq: number;
  readonly last_seq: number;
  readonly records: number;
  readonly data: { readonly key: string; readonly bytes: number; readonly sha256: string; readonly encoding: 'gzip' };
  /** The previous segment: null for index 0. */
  readonly prev: { readonly index: number; readonly manifest_sha256: string; readonly last_seq: number; readonly head_hash: string } | null;
  /** The signed checkpoints with first_seq ≤ seq ≤ last_seq, in seq order; the last is at last_seq. */
  readonly checkpoints: readonly Checkpoint[];
  /** The chain state after last_seq (its hash is the last checkpoint's head_hash, its frontier's root its merkle_root). */
  readonly end: ChainStart;
  readonly created: string;
  readonly key_id: string;
  readonly signature: string;
}

export type UnsignedManifest = Omit<SegmentManifest, 'key_id' | 'signature' | 'format' | 'v'>;

export function sha256Hex(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * RFC 8785 (JCS) for the values a manifest holds: objects (members sorted by UTF-16 code
 * units), arrays, strings (ECMAScript JSON.stringify escaping), safe integers, booleans
 * and null. Anything else (a float, undefined) is refused rather than written ambiguously.
 */
export function jcs(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new TypeError(`jcs: ${v} is not a safe integer`);
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map(jcs).join(',')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${jcs(o[k])}`).join(',')}}`;
  }
  throw new TypeError(`jcs: cannot encode a ${typeof v}`);
}

/** `<prefix><stream>/`: where one stream's segments live. */
export function streamPrefix(prefix: string, stream: string): string {
  return `${prefix}${stream}/`;
}

function idx(index: number): string {
  return String(index).padStart(12, '0');
}

export function manifestKey(prefix: string, stream: string, index: number): string {
  return `${streamPrefix(prefix, stream)}${idx(index)}.manifest.json`;
}

export function dataKey(prefix: string, stream: string, index: number, sha256: string): string {
  return `${streamPrefix(prefix, stream)}${idx(index)}.${sha256}.jsonl.gz`;
}

const KEY_NAME = /^(\d{12})\.(?:(manifest)\.json|([0-9a-f]{64})\.jsonl\.gz)$/;

/** The segment index and kind of an object name inside a stream's folder, or null for any other name. */
export function parseKeyName(name: string): { index: number; kind: 'manifest' } | { index: number; kind: 'data'; sha256: string } | null {
  const m = KEY_NAME.exec(name);
  if (m === null) return null;
  const index = Number(m[1]);
  return m[2] === 'manifest' ? { index, kind: 'manifest' } : { index, kind: 'data', sha256: m[3] as string };
}

/** The data object of a segment: one stored record text per line, gzip (deterministic: no name, no mtime). */
export async function encodeRecords(records: readonly string[]): Promise<Buffer> {
  // A stored record is JSON: it never holds a raw newline (JSON escapes it), so lines split exactly.
  return gzip(Buffer.from(records.length === 0 ? '' : records.join('\n') + '\n', 'utf8'), { level: 6 });
}

/** The inverse of encodeRecords; throws on bytes that are not gzip. */
export async function decodeRecords(data: Buffer): Promise<string[]> {
  const text = (await gunzip(data)).toString('utf8');
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function message(m: Omit<SegmentManifest, 'signature'>): Buffer {
  return Buffer.from(MANIFEST_PREFIX + jcs(m), 'utf8');
}

/** Signs a manifest with the checkpoint key and returns it with its stored bytes (JCS + signature member). */
export function signManifest(m: UnsignedManifest, signer: CheckpointSigner): { manifest: SegmentManifest; bytes: Buffer } {
  const body: Omit<SegmentManifest, 'signature'> = { format: MANIFEST_FORMAT, v: 1, ...m, key_id: signer.keyId };
  const signature = signer.signDetached(message(body)).toString('base64url');
  const manifest: SegmentManifest = { ...body, signature };
  return { manifest, bytes: Buffer.from(jcs(manifest), 'utf8') };
}

export function verifyManifestSignature(m: SegmentManifest, pub: KeyObject): boolean {
  try {
    const { signature, ...body } = m;
    return verify(null, message(body), pub, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

function isInt(v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
}

/** Parses a manifest's bytes; the reason when they are not a manifest of this format. */
export function parseManifest(bytes: Buffer): SegmentManifest | string {
  let m: Partial<SegmentManifest> & Record<string, unknown>;
  try {
    m = JSON.parse(bytes.toString('utf8')) as typeof m;
  } catch {
    return 'not JSON';
  }
  if (m === null || typeof m !== 'object') return 'not an object';
  if (m.format !== MANIFEST_FORMAT || m.v !== 1) return 'not a gatehouse audit archive manifest (format/v)';
  if (typeof m.stream !== 'string' || !isInt(m.index, 0) || !isInt(m.first_seq, 1) || !isInt(m.last_seq, 1) || !isInt(m.records, 0)) return 'bad stream/index/first_seq/last_seq/records';
  if (m.last_seq < m.first_seq) return 'last_seq is before first_seq';
  const d = m.data;
  if (d === null || typeof d !== 'object' || typeof d.key !== 'string' || !isInt(d.bytes, 0) || typeof d.sha256 !== 'string' || !HEX64.test(d.sha256)) return 'bad data member';
  if (m.prev !== null && (typeof m.prev !== 'object' || !isInt(m.prev?.index, 0) || !HEX64.test(String(m.prev?.manifest_sha256)) || !isInt(m.prev?.last_seq, 1) || typeof m.prev?.head_hash !== 'string')) return 'bad prev member';
  if (!Array.isArray(m.checkpoints) || m.checkpoints.length === 0) return 'no checkpoints';
  const e = m.end;
  if (e === null || typeof e !== 'object' || !isInt(e.seq, 1) || typeof e.hash !== 'string' || e.frontier === null || typeof e.frontier !== 'object' || !isInt(e.frontier.size, 0) || !Array.isArray(e.frontier.stack)) return 'bad end member';
  if (typeof m.signature !== 'string' || typeof m.key_id !== 'string') return 'unsigned';
  return m as SegmentManifest;
}
