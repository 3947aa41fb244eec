/**
 * The archiver: one per gateway instance, archiving its own stream in the background
 * (docs/audit.md, "Archive"). Each run:
 *
 * 1. checks the target (reachable, ours, not readable anonymously; Object Lock);
 * 2. cuts closed segments: the stored records after the last anchor up to a signed
 *    checkpoint (at most `segment_records` past the anchor when a checkpoint allows it),
 *    exactly as stored, with the checkpoints in that range;
 * 3. verifies each segment before it leaves (the audit verifier, continuing from the
 *    anchor, MACs and signatures checked): a segment that does not verify is never
 *    uploaded, and archiving stops there with an error (a declared crash `gap` is part of
 *    the honest record and is archived as it is);
 * 4. writes the data object, then the signed manifest (write-once), reads both back and
 *    compares them byte for byte with what was verified, checks the manifest cannot be
 *    read anonymously, and only then records the anchor in the store;
 * 5. prunes local records whose segment is anchored and older than `keep_local`, after
 *    checking the segment's objects are still there.
 *
 * It never blocks a request: it runs on timers, reads through the store (the SQLite store
 * reads in its worker thread), yields to the event loop while it verifies, and compresses
 * in the libuv thread pool. A failing run (bucket unreachable, denied, public...) is
 * retried with exponential backoff up to `retry_max`, with a metric and a `warn` log event
 * (`audit_archive_unavailable`; errors for what needs an operator), and `info`
 * (`audit_archive_recovered`) when it works again. Records are never lost: nothing is
 * pruned that is not archived and read back.
 */
import type { Logger } from '../../observability/logger.js';
import type { CheckpointSigner, Checkpoint } from '../checkpoint.js';
import type { Keyring } from '../keyring.js';
import type { ArchiveAnchor, AuditStore } from '../store/types.js';
import { verifyStream, type ChainStart } from '../verify.js';
import { dataKey, decodeRecords, encodeRecords, manifestKey, parseManifest, sha256Hex, signManifest, verifyManifestSignature, type SegmentManifest } from './format.js';
import { ArchiveTargetError, type ArchiveTarget, type TargetCheck, type TargetFailure } from './target.js';

export type ArchiveFailure = TargetFailure | 'invalid_segment' | 'conflict' | 'readback' | 'store';

export class ArchiveError extends Error {
  readonly reason: ArchiveFailure;
  constructor(reason: ArchiveFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ArchiveError';
    this.reason = reason;
  }
}

export interface ArchiverMetrics {
  segment(records: number, bytes: number): void;
  failure(reason: ArchiveFailure): void;
  up(ok: boolean): void;
  success(epochSeconds: number, lagRecords: number): void;
  pruned(records: number): void;
  objectLock(enabled: boolean): void;
}

export interface ArchiverOptions {
  readonly store: AuditStore;
  readonly target: ArchiveTarget;
  readonly stream: string;
  /** MACs are checked before a segment leaves (the gateway has the keyring). */
  readonly keyring: Keyring | null;
  /** Signs manifests; its public key checks the checkpoints. */
  readonly signer: CheckpointSigner;
  readonly segmentRecords: number;
  readonly intervalMs: number;
  /** Prune archived records older than this; null: never prune. */
  readonly keepLocalMs: number | null;
  /** Object Lock retention of each object, when the bucket has Object Lock. */
  readonly retentionMs: number;
  readonly objectLock: 'if_supported' | 'required';
  /** Default: the bucket's default retention mode, else GOVERNANCE. */
  readonly lockMode?: 'GOVERNANCE' | 'COMPLIANCE' | null;
  readonly retryMaxMs: number;
  /** The stream's current head seq (for the lag gauge). */
  readonly headSeq?: () => number;
  readonly metrics?: ArchiverMetrics | null;
  readonly log?: Logger | null;
  readonly now?: () => number;
}

const PAGE = 5000;
/** Records verified between two turns of the event loop. */
const SLICE = 256;

const yieldLoop = () => new Promise<void>((ok) => setImmediate(ok));

/** The seq of a stored record, read from its text (`,"seq":N,` can only be a member: JSON strings escape every quote). */
function seqOf(data: string): number {
  const m = /[{,]"seq":(\d{1,16})[,}]/.exec(data);
  return m === null ? NaN : Number(m[1]);
}

async function* paced(lines: readonly string[]): AsyncGenerator<string> {
  for (let i = 0; i < lines.length; i++) {
    if (i > 0 && i % SLICE === 0) await yieldLoop();
    yield lines[i] as string;
  }
}

interface Segment {
  readonly index: number;
  readonly firstSeq: number;
  readonly lines: string[];
  readonly checkpoints: Checkpoint[];
  readonly end: ChainStart;
  readonly lastRowId: number;
  readonly data: Buffer;
  readonly dataSha: string;
  readonly manifest: SegmentManifest;
  readonly manifestBytes: Buffer;
}

export interface RunResult {
  segments: number;
  pruned: number;
}

export class Archiver {
  private readonly o: ArchiverOptions;
  private readonly now: () => number;
  private anchor: ArchiveAnchor | null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private failures = 0;
  private failingSince = 0;
  private lastReason: ArchiveFailure | null = null;
  private warnedNoLock = false;
  private warnedPrune = false;

  private constructor(o: ArchiverOptions, anchor: ArchiveAnchor | null) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.anchor = anchor;
  }

  /**
   * Loads the stream's archive progress and checks the target once: a target that is
   * readable anonymously (or without Object Lock when it is required) refuses the start;
   * one that cannot be reached now does not (the first run retries it).
   */
  static async open(o: ArchiverOptions): Promise<Archiver> {
    const anchors = await o.store.archiveAnchors(o.stream);
    const a = new Archiver(o, anchors[anchors.length - 1] ?? null);
    // Staleness counts from the start until the first run succeeds (the stale alert then
    // fires for an archive that never worked, too).
    const archivedSeq = a.anchor?.seq ?? 0;
    o.metrics?.success((o.now ?? Date.now)() / 1000, Math.max(0, (o.headSeq?.() ?? archivedSeq) - archivedSeq));
    try {
      a.requireLock(await o.target.check());
    } catch (err) {
      const reason = (err as ArchiveTargetError).reason;
      if (reason === 'public' || reason === 'object_lock_missing') throw err;
      o.log?.warn({ event: 'audit_archive_unavailable', stream: o.stream, target: o.target.location, reason: reason ?? 'error', err: (err as Error).message }, 'audit archive target not reachable at start; archiving will retry');
    }
    return a;
  }

  /** Archive progress: the latest anchor, or null. */
  get archived(): ArchiveAnchor | null {
    return this.anchor;
  }

  /** For `GET /audit/status`. */
  status(): { target: string; archived_seq: number; segments: number; failing: boolean; failures: number; reason: ArchiveFailure | null } {
    return { target: this.o.target.location, archived_seq: this.anchor?.seq ?? 0, segments: this.anchor === null ? 0 : this.anchor.segment.index + 1, failing: this.failures > 0, failures: this.failures, reason: this.lastReason };
  }

  /** Starts the timer: the first run after `delayMs`, then every interval (sooner while retrying). */
  start(delayMs = 0): void {
    if (this.closed) return;
    this.schedule(delayMs);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.tick();
    }, ms);
    this.timer.unref();
  }

  /** One run now (a test, an operator command), after any run in progress; reports like the timer's runs do. */
  async runNow(): Promise<RunResult> {
    while (this.running !== null) await this.running;
    let result: RunResult = { segments: 0, pruned: 0 };
    let error: unknown = null;
    this.running = (async () => {
      try {
        result = await this.runOnce();
        this.succeeded();
      } catch (err) {
        error = err;
        this.failed(err);
      }
    })();
    try {
      await this.running;
    } finally {
      this.running = null;
    }
    if (error !== null) throw error;
    return result;
  }

  private async tick(): Promise<void> {
    try {
      await this.runNow();
      this.schedule(this.o.intervalMs);
    } catch {
      this.schedule(this.backoff());
    }
  }

  /** 1 s, 2 s, 4 s, … up to retry_max. */
  private backoff(): number {
    return Math.min(this.o.retryMaxMs, 1000 * 2 ** Math.min(this.failures - 1, 30));
  }

  private succeeded(): void {
    if (this.failures > 0) {
      this.o.log?.info({ event: 'audit_archive_recovered', stream: this.o.stream, target: this.o.target.location, failures: this.failures, down_ms: this.now() - this.failingSince }, 'audit archive works again');
    }
    this.failures = 0;
    this.lastReason = null;
    this.o.metrics?.up(true);
    const head = this.o.headSeq?.() ?? this.anchor?.seq ?? 0;
    this.o.metrics?.success(this.now() / 1000, Math.max(0, head - (this.anchor?.seq ?? 0)));
  }

  private failed(err: unknown): void {
    const reason: ArchiveFailure = (err as ArchiveError | ArchiveTargetError)?.reason ?? 'error';
    if (this.failures === 0) this.failingSince = this.now();
    this.failures++;
    this.o.metrics?.failure(reason);
    this.o.metrics?.up(false);
    if (this.failures > 1 && reason === this.lastReason) return;
    this.lastReason = reason;
    const fields = { stream: this.o.stream, target: this.o.target.location, reason, err: (err as Error)?.message ?? String(err), retry_in_ms: this.backoff() };
    // What an operator must fix is an error; what may pass by itself (an outage) a warning.
    if (reason === 'public') this.o.log?.error({ event: 'audit_archive_public', ...fields }, 'audit archive refused: the target can be read without credentials; nothing more is written and nothing is pruned');
    else if (reason === 'object_lock_missing') this.o.log?.error({ event: 'audit_archive_object_lock_missing', ...fields }, 'audit archive refused: Object Lock is required but the bucket does not have it');
    else if (reason === 'invalid_segment') this.o.log?.error({ event: 'audit_archive_segment_invalid', ...fields }, 'audit archive stopped: the next segment does not verify; it is not uploaded and nothing is pruned');
    else if (reason === 'conflict') this.o.log?.error({ event: 'audit_archive_conflict', ...fields }, 'audit archive stopped: the target holds other objects under this stream\'s keys (never overwritten)');
    else this.o.log?.warn({ event: 'audit_archive_unavailable', ...fields }, 'audit archive delayed; records stay in the local store');
  }

  private requireLock(c: TargetCheck): void {
    this.o.metrics?.objectLock(c.objectLock !== null);
    if (c.objectLock !== null) return;
    if (this.o.objectLock === 'required') throw new ArchiveTargetError('object_lock_missing', `${this.o.target.location}: Object Lock is required (audit.archive.object_lock: required) but not enabled on the bucket`);
    if (!this.warnedNoLock && this.o.target.kind === 's3') {
      this.warnedNoLock = true;
      this.o.log?.warn({ event: 'audit_archive_no_object_lock', stream: this.o.stream, target: this.o.target.location }, 'the archive bucket has no Object Lock: objects are write-once by key, but whoever may delete in the bucket can delete segments (verification names them as missing)');
    }
  }

  /** One run: check, archive every closed segment, prune. */
  private async runOnce(): Promise<RunResult> {
    const check = await this.o.target.check();
    this.requireLock(check);
    let segments = 0;
    while (!this.closed) {
      const seg = await this.cut();
      if (seg === null) break;
      await this.upload(seg, check);
      segments++;
      await yieldLoop();
    }
    const pruned = this.closed ? 0 : await this.prune();
    return { segments, pruned };
  }

  private async store<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new ArchiveError('store', `audit store: ${what}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The next closed segment after the anchor, read, verified and encoded; null when there is none yet. */
  private async cut(): Promise<Segment | null> {
    const { store, stream, signer } = this.o;
    const a = this.anchor;
    const after = a?.seq ?? 0;
    const cps = (await this.store('checkpoints', () => store.checkpoints(stream))).filter((c) => c.seq > after).sort((x, y) => x.seq - y.seq);
    if (cps.length === 0) return null;
    // Up to segment_records past the anchor, ending at a checkpoint; a single checkpoint
    // farther away than that still closes a (larger) segment.
    let endIdx = 0;
    for (let i = 0; i < cps.length; i++) if ((cps[i] as Checkpoint).seq - after <= this.o.segmentRecords) endIdx = i;
    const end = (cps[endIdx] as Checkpoint).seq;
    const checkpoints = cps.slice(0, endIdx + 1);
    const lines: string[] = [];
    let rowId = a?.row_id ?? 0;
    let lastRowId = rowId;
    let found = false;
    read: for (;;) {
      const rows = await this.store('read', () => store.readRaw(stream, rowId, PAGE));
      for (const r of rows) {
        lines.push(r.data);
        lastRowId = r.id;
        if (seqOf(r.data) === end) {
          found = true;
          break read;
        }
      }
      if (rows.length < PAGE) break;
      rowId = (rows[rows.length - 1] as { id: number }).id;
      await yieldLoop();
    }
    const index = a === null ? 0 : a.segment.index + 1;
    const where = `segment ${index} (seqs ${after + 1}..${end})`;
    if (!found) throw new ArchiveError('invalid_segment', `${where}: record ${end}, which the signed checkpoint covers, is not in the store after seq ${after}`);
    const from = a === null ? null : { seq: a.seq, hash: a.hash, frontier: a.frontier };
    const rep = await verifyStream(stream, paced(lines), a === null ? checkpoints : [a.checkpoint, ...checkpoints], { keyring: this.o.keyring, publicKey: signer.publicKey, from });
    // A crash gap declared by a restart record is part of the honest record.
    const bad = rep.problems.filter((p) => p.kind !== 'gap');
    if (bad.length > 0) {
      const p = bad[0] as { seq: number; kind: string; detail: string };
      throw new ArchiveError('invalid_segment', `${where} does not verify (${bad.length} problem(s); seq ${p.seq}: ${p.kind}: ${p.detail})`);
    }
    const endState = rep.end as ChainStart;
    if (endState.seq !== end) throw new ArchiveError('invalid_segment', `${where}: the records end at seq ${endState.seq}`);
    const data = await encodeRecords(lines);
    const dataSha = sha256Hex(data);
    const { manifest, bytes } = signManifest(
      {
        stream,
        index,
        first_seq: after + 1,
        last_seq: end,
        records: lines.length,
        data: { key: dataKey(this.o.target.prefix, stream, index, dataSha), bytes: data.length, sha256: dataSha, encoding: 'gzip' },
        prev: a === null ? null : { index: a.segment.index, manifest_sha256: a.segment.manifest_sha256, last_seq: a.seq, head_hash: a.hash },
        checkpoints,
        end: endState,
        created: new Date(this.now()).toISOString(),
      },
      signer,
    );
    return { index, firstSeq: after + 1, lines, checkpoints, end: endState, lastRowId, data, dataSha, manifest, manifestBytes: bytes };
  }

  /**
   * A manifest already under this index (a run cut short between writing it and recording
   * the anchor) is adopted when it is ours and describes exactly this segment, with its
   * data object holding exactly these records; anything else is a conflict.
   */
  private async adopt(seg: Segment, existing: Buffer): Promise<{ manifest: SegmentManifest; bytes: Buffer }> {
    const key = manifestKey(this.o.target.prefix, this.o.stream, seg.index);
    const m = parseManifest(existing);
    const conflict = (why: string) => new ArchiveError('conflict', `${this.o.target.location}: ${key} already exists and ${why}`);
    if (typeof m === 'string') throw conflict(`is not a manifest (${m})`);
    if (!verifyManifestSignature(m, this.o.signer.publicKey)) throw conflict('is not signed with this gateway\'s checkpoint key');
    const mine = seg.manifest;
    if (m.stream !== mine.stream || m.index !== mine.index || m.first_seq !== mine.first_seq || m.last_seq !== mine.last_seq || m.end.hash !== mine.end.hash || m.prev?.manifest_sha256 !== mine.prev?.manifest_sha256) {
      throw conflict(`describes another segment (seqs ${m.first_seq}..${m.last_seq})`);
    }
    const data = await this.o.target.get(m.data.key);
    if (data === null || sha256Hex(data) !== m.data.sha256) throw conflict('names a data object that is missing or altered');
    const lines = await decodeRecords(data);
    if (lines.length !== seg.lines.length || lines.some((l, i) => l !== seg.lines[i])) throw conflict('names a data object with other records');
    return { manifest: m, bytes: existing };
  }

  private async upload(seg: Segment, check: TargetCheck): Promise<void> {
    const { target, stream } = this.o;
    const lock =
      check.objectLock === null ? {} : { retainUntil: new Date(this.now() + this.o.retentionMs), lockMode: this.o.lockMode ?? check.objectLock.mode ?? 'GOVERNANCE' };
    const mKey = manifestKey(target.prefix, stream, seg.index);
    const d = await target.putOnce(seg.manifest.data.key, seg.data, { ...lock, contentType: 'application/gzip' });
    // The key names the content's SHA-256: other bytes under it were put there by someone else.
    if (d === 'conflict') throw new ArchiveError('conflict', `${target.location}: ${seg.manifest.data.key} holds other bytes than its name says`);
    let manifest = seg.manifest;
    let manifestBytes = seg.manifestBytes;
    const m = await target.putOnce(mKey, manifestBytes, { ...lock, contentType: 'application/json' });
    if (m === 'conflict') {
      const existing = await target.get(mKey);
      if (existing === null) throw new ArchiveError('readback', `${target.location}: ${mKey} exists but cannot be read`);
      ({ manifest, bytes: manifestBytes } = await this.adopt(seg, existing));
    }
    // Read back: the target must now hold exactly the bytes that were verified.
    const back = await target.get(manifest.data.key);
    if (back === null || sha256Hex(back) !== manifest.data.sha256) throw new ArchiveError('readback', `${target.location}: ${manifest.data.key} does not read back as written`);
    const mBack = await target.get(mKey);
    if (mBack === null || !mBack.equals(manifestBytes)) throw new ArchiveError('readback', `${target.location}: ${mKey} does not read back as written`);
    await target.probeAnonymous(mKey);
    const cp = seg.checkpoints[seg.checkpoints.length - 1] as Checkpoint;
    const anchor: ArchiveAnchor = {
      stream,
      seq: seg.end.seq,
      hash: seg.end.hash,
      frontier: seg.end.frontier,
      checkpoint: cp,
      segment: { index: seg.index, first_seq: seg.firstSeq, records: seg.lines.length, manifest_key: mKey, manifest_sha256: sha256Hex(manifestBytes), data_key: manifest.data.key, data_sha256: manifest.data.sha256 },
      location: target.location,
      archived_at: new Date(this.now()).toISOString(),
      row_id: seg.lastRowId,
    };
    await this.store('record the anchor', () => this.o.store.addArchiveAnchor(anchor));
    this.anchor = anchor;
    this.o.metrics?.segment(seg.lines.length, seg.data.length + manifestBytes.length);
    this.o.log?.info({ event: 'audit_archive_segment', stream, target: target.location, index: seg.index, first_seq: seg.firstSeq, last_seq: seg.end.seq, records: seg.lines.length, bytes: seg.data.length }, 'audit segment archived and read back');
  }

  /** Prunes the local records of segments anchored and older than keep_local (by their last checkpoint's time). */
  private async prune(): Promise<number> {
    const keep = this.o.keepLocalMs;
    if (keep === null) return 0;
    const { store, stream, target } = this.o;
    const pruned = await this.store('prunedTo', () => store.prunedTo(stream));
    const cutoff = this.now() - keep;
    const due = (await this.store('anchors', () => store.archiveAnchors(stream))).filter((a) => a.seq > (pruned?.seq ?? 0) && Date.parse(a.checkpoint.time) <= cutoff);
    const last = due[due.length - 1];
    if (last === undefined) return 0;
    // Still there? (A lifecycle rule or someone with delete rights may have removed them.)
    for (const a of due) {
      for (const key of [a.segment.manifest_key, a.segment.data_key]) {
        if ((await target.head(key)) === null) throw new ArchiveError('readback', `${target.location}: ${key} (segment ${a.segment.index}) is no longer in the archive; its records are not pruned`);
      }
    }
    let n: number;
    try {
      n = await store.prune(stream, last.seq);
    } catch (err) {
      const msg = (err as Error).message;
      if (/permission denied/i.test(msg)) {
        if (!this.warnedPrune) {
          this.warnedPrune = true;
          this.o.log?.warn({ event: 'audit_archive_prune_not_permitted', stream, err: msg }, 'archived records are not pruned: the gateway\'s database role may not prune (run `gatehouse audit prune` with the pruner role)');
        }
        return 0;
      }
      throw new ArchiveError('store', `audit store: prune: ${msg}`, { cause: err });
    }
    this.o.metrics?.pruned(n);
    if (n > 0) this.o.log?.info({ event: 'audit_archive_pruned', stream, to_seq: last.seq, records: n }, 'archived audit records pruned from the local store');
    return n;
  }

  /** Stops the timer and waits for a run in progress. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    while (this.running !== null) await this.running.catch(() => undefined);
  }
}
