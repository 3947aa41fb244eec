/**
 * Verifies an archive on its own (docs/audit.md, "Verifying an archive"): for each stream
 * under the prefix, the segments in index order —
 *
 * - the manifests: each present (`segment_missing`), a manifest of this format signed with
 *   the checkpoint key (`segment_altered`), for this stream and this index
 *   (`segment_reordered`), following its predecessor (its `prev` names the predecessor's
 *   SHA-256, last seq and head hash: `segment_altered` when they differ, `segment_reordered`
 *   when the seqs do not follow);
 * - the data objects: present, with the SHA-256, size and record count the manifest says;
 * - the records: every segment's records, in order across segment boundaries, go through
 *   the audit verifier (verify.ts) with every manifest's checkpoints, exactly as a store or
 *   an export does — MACs with the keyring, checkpoints with the public key.
 *
 * Given what the gateway recorded locally (its archive anchors), it also names a segment
 * the store says was archived but the archive lacks or holds differently: the tail of an
 * archive can only be missed that way (or by a later checkpoint an auditor holds).
 */
import type { Checkpoint } from '../checkpoint.js';
import type { ArchiveAnchor } from '../store/types.js';
import { verifyStream, type StreamReport, type VerifyOptions } from '../verify.js';
import { decodeRecords, parseKeyName, parseManifest, sha256Hex, streamPrefix, verifyManifestSignature, type SegmentManifest } from './format.js';
import type { ArchiveTarget } from './target.js';

export type ArchiveProblemKind = 'segment_missing' | 'segment_altered' | 'segment_reordered';

export interface ArchiveProblem {
  readonly segment: number;
  readonly kind: ArchiveProblemKind;
  readonly detail: string;
}

export interface ArchiveStreamReport {
  readonly stream: string;
  segments: number;
  /** Sorted by segment index. */
  problems: ArchiveProblem[];
  /** The verifier's report over every archived record of the stream. */
  records: StreamReport;
  /** Seq ranges of the segments, by index (to name the segment a record problem falls in). */
  ranges: Array<{ index: number; first: number; last: number }>;
}

export interface ArchiveVerifyOptions extends VerifyOptions {
  /** Only these streams (default: every stream under the prefix). */
  readonly streams?: readonly string[];
  /** What the local store recorded as archived, per stream. */
  readonly anchors?: (stream: string) => Promise<readonly ArchiveAnchor[]>;
}

/** The objects found under one segment index. */
export interface Slot {
  manifestKey?: string;
  dataKeys: string[];
}

/** A stream's objects under the target's prefix, by segment index (other names are ignored). */
export async function segmentSlots(target: ArchiveTarget, stream: string): Promise<Map<number, Slot>> {
  const base = streamPrefix(target.prefix, stream);
  const slots = new Map<number, Slot>();
  for (const key of await target.list(base)) {
    const p = parseKeyName(key.slice(base.length));
    if (p === null) continue;
    let s = slots.get(p.index);
    if (s === undefined) slots.set(p.index, (s = { dataKeys: [] }));
    if (p.kind === 'manifest') s.manifestKey = key;
    else s.dataKeys.push(key);
  }
  return slots;
}

async function verifyArchiveStream(target: ArchiveTarget, stream: string, opts: ArchiveVerifyOptions): Promise<ArchiveStreamReport> {
  const problems: ArchiveProblem[] = [];
  const problem = (segment: number, kind: ArchiveProblemKind, detail: string) => problems.push({ segment, kind, detail });
  const slots = await segmentSlots(target, stream);
  const anchors = opts.anchors !== undefined ? await opts.anchors(stream) : [];
  let last = -1;
  for (const i of slots.keys()) last = Math.max(last, i);
  for (const a of anchors) last = Math.max(last, a.segment.index);

  // Pass 1: the manifests, which hold every checkpoint (the verifier needs them first).
  const manifests: Array<{ m: SegmentManifest | null; sha: string | null; slot: Slot | undefined }> = [];
  for (let i = 0; i <= last; i++) {
    const slot = slots.get(i);
    if (slot?.manifestKey === undefined) {
      problem(i, 'segment_missing', slot !== undefined ? `segment ${i}: the manifest is missing (its data object is there)` : `segment ${i} is missing (no manifest, no data object)`);
      manifests.push({ m: null, sha: null, slot });
      continue;
    }
    const bytes = await target.get(slot.manifestKey);
    if (bytes === null) {
      problem(i, 'segment_missing', `segment ${i}: the manifest ${slot.manifestKey} is listed but cannot be read`);
      manifests.push({ m: null, sha: null, slot });
      continue;
    }
    const sha = sha256Hex(bytes);
    const m = parseManifest(bytes);
    if (typeof m === 'string') {
      problem(i, 'segment_altered', `segment ${i}: the manifest is not valid (${m})`);
      manifests.push({ m: null, sha, slot });
      continue;
    }
    if (opts.publicKey && !verifyManifestSignature(m, opts.publicKey)) problem(i, 'segment_altered', `segment ${i}: the manifest's signature does not verify with the public key`);
    if (m.stream !== stream) problem(i, 'segment_reordered', `segment ${i}: the object holds a manifest of stream ${JSON.stringify(m.stream)}`);
    else if (m.index !== i) problem(i, 'segment_reordered', `segment ${i}: the object holds segment ${m.index} (seqs ${m.first_seq}..${m.last_seq})`);
    manifests.push({ m, sha, slot });
  }
  for (let i = 0; i < manifests.length; i++) {
    const m = (manifests[i] as { m: SegmentManifest | null }).m;
    if (m === null || m.index !== i) continue;
    if (i === 0) {
      if (m.prev !== null || m.first_seq !== 1) problem(0, 'segment_altered', `segment 0 does not start the stream (first seq ${m.first_seq})`);
      continue;
    }
    const before = manifests[i - 1] as { m: SegmentManifest | null; sha: string | null };
    if (m.prev === null) {
      problem(i, 'segment_altered', `segment ${i} claims to be the first`);
      continue;
    }
    if (before.sha !== null && before.sha !== m.prev.manifest_sha256) problem(i - 1, 'segment_altered', `segment ${i - 1}: its manifest is not the one segment ${i} follows (SHA-256 ${before.sha.slice(0, 16)}…, segment ${i} names ${m.prev.manifest_sha256.slice(0, 16)}…)`);
    if (before.m !== null && before.m.index === i - 1) {
      if (m.first_seq !== before.m.last_seq + 1) problem(i, 'segment_reordered', `segment ${i} begins at seq ${m.first_seq}, but segment ${i - 1} ends at seq ${before.m.last_seq}`);
      else if (m.prev.head_hash !== before.m.end.hash) problem(i, 'segment_altered', `segment ${i} follows a head hash that segment ${i - 1} does not end with`);
    }
  }
  for (const a of anchors) {
    const got = manifests[a.segment.index];
    const range = `seqs ${a.segment.first_seq}..${a.seq}`;
    if (got === undefined || got.sha === null) continue; // already named missing
    if (got.sha !== a.segment.manifest_sha256) problem(a.segment.index, 'segment_altered', `segment ${a.segment.index} (${range}): the manifest differs from the one the local store recorded as archived on ${a.archived_at}`);
  }

  const checkpoints: Checkpoint[] = [];
  const ranges: ArchiveStreamReport['ranges'] = [];
  for (const { m } of manifests) {
    if (m === null) continue;
    checkpoints.push(...m.checkpoints);
    ranges.push({ index: m.index, first: m.first_seq, last: m.last_seq });
  }

  // Pass 2: the records, one segment's data object at a time, in index order.
  async function* records(): AsyncGenerator<string> {
    for (let i = 0; i < manifests.length; i++) {
      const { m, slot } = manifests[i] as { m: SegmentManifest | null; slot: Slot | undefined };
      // Without a (readable) manifest, the segment's data object, if there is exactly one, is still read.
      const key = m !== null ? m.data.key : slot?.dataKeys.length === 1 ? slot.dataKeys[0] : undefined;
      if (key === undefined) continue;
      const data = await target.get(key);
      if (data === null) {
        problem(i, 'segment_missing', `segment ${i}: the data object ${key} is missing`);
        continue;
      }
      const sha = sha256Hex(data);
      if (m !== null && (sha !== m.data.sha256 || data.length !== m.data.bytes)) problem(i, 'segment_altered', `segment ${i}: the data object does not have the SHA-256 the manifest names (${sha.slice(0, 16)}…, not ${m.data.sha256.slice(0, 16)}…)`);
      let lines: string[];
      try {
        lines = await decodeRecords(data);
      } catch (err) {
        problem(i, 'segment_altered', `segment ${i}: the data object cannot be decoded (${(err as Error).message})`);
        continue;
      }
      if (m !== null && lines.length !== m.records) problem(i, 'segment_altered', `segment ${i}: ${lines.length} records, the manifest says ${m.records}`);
      for (let k = 0; k < lines.length; k++) {
        if (k > 0 && k % 1024 === 0) await new Promise<void>((ok) => setImmediate(ok));
        yield lines[k] as string;
      }
    }
  }
  const rep = await verifyStream(stream, records(), checkpoints, opts);
  problems.sort((a, b) => a.segment - b.segment);
  return { stream, segments: manifests.length, problems, records: rep, ranges };
}

export async function verifyArchive(target: ArchiveTarget, opts: ArchiveVerifyOptions = {}): Promise<ArchiveStreamReport[]> {
  const streams = opts.streams ?? (await target.folders(target.prefix));
  const out: ArchiveStreamReport[] = [];
  for (const s of streams) out.push(await verifyArchiveStream(target, s, opts));
  return out;
}

/** The segment a seq falls in, for messages. */
export function segmentOf(r: ArchiveStreamReport, seq: number): number | null {
  return r.ranges.find((x) => seq >= x.first && seq <= x.last)?.index ?? null;
}

export function formatArchiveReport(r: ArchiveStreamReport): string {
  const rec = r.records;
  const head = `archive stream ${r.stream}: ${r.segments} segment(s), ${rec.records} records, last seq ${rec.lastSeq}, ${rec.checkpoints} checkpoint(s)${rec.macsChecked ? '' : ', MACs not checked (no keyring)'}${rec.signaturesChecked ? '' : ', signatures not checked (no public key)'}`;
  const n = r.problems.length + rec.problems.length;
  if (n === 0) return `${head}: OK`;
  const lines = [`${head}: ${n} problem(s)`];
  for (const p of r.problems.slice(0, 20)) lines.push(`  segment ${p.segment}: ${p.kind}: ${p.detail}`);
  for (const p of rec.problems.slice(0, 20)) {
    const seg = segmentOf(r, p.seq);
    lines.push(`  seq ${p.seq}${seg !== null ? ` (segment ${seg})` : ''}: ${p.kind}: ${p.detail}`);
  }
  if (r.problems.length > 20 || rec.problems.length > 20) lines.push('  …');
  return lines.join('\n');
}
