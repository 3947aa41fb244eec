/**
 * The verifier (docs/audit.md, "Verifying"). It reads one stream's records in storage
 * order (an export's line order, a store's insertion order) plus its checkpoints, and
 * names every problem with the seq it concerns. A stream holds v1 records (each chained
 * by prev_hash, MAC and hash: chain.ts), v2 records (a leaf each, one seal per batch:
 * v2.ts), or v1 records followed by v2 ones (a stream continued by a newer writer).
 *
 *   modified   a record's content does not match its hash (v1) or leaf (v2); a v1 hash
 *              that is not the next record's prev_hash; a v2 batch whose seal does not
 *              verify, or records no seal covers; a checkpoint's head or Merkle root
 *   inserted   a second record with a seq already seen
 *   deleted    seqs missing from the stream (and never seen later)
 *   reordered  a seq that appears after a higher one
 *   truncated  the stream ends before the seq of a signed checkpoint, or inside a v2
 *              batch (records after the last seal that no seal covers)
 *   wrong_key  the MAC or seal does not verify with key[kid] (unknown kid, another key
 *              of the ring, or — v1 — a self-consistent record whose MAC was made with a
 *              key not in the ring)
 *   bad_checkpoint_signature  a checkpoint whose Ed25519 signature does not verify
 *   gap        seqs lost in a crash, declared by the restart record that follows them
 *              (bounded, detected loss — reported, never silently valid); a declared
 *              range that a signed checkpoint covers is `truncated` instead: a record a
 *              checkpoint vouched for was stored, so it was deleted, not lost
 *   malformed  an entry that is not a record (not JSON, a missing field), with its position
 *
 * Without the HMAC keyring (a third party) MACs and seals are not checked; hashes,
 * leaves, links, seqs, batch boundaries and signed checkpoints are, which detects
 * rewriting and truncation up to the latest checkpoint.
 */
import { hash, type KeyObject } from 'node:crypto';
import { canonical, genesis, isHex32 } from './canonical.js';
import { RecordHasher, type MacKey } from './chain-hash.js';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import type { Keyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import { CANONICAL_FIELDS, type AuditBody, type ChainedRecord, type ChainFields } from './record.js';
import { LeafHasher, rootOfLeaves, sealOf, V2 } from './v2.js';

export type ProblemKind = 'modified' | 'inserted' | 'deleted' | 'reordered' | 'truncated' | 'wrong_key' | 'bad_checkpoint_signature' | 'gap' | 'malformed';

export interface Problem {
  readonly seq: number;
  readonly kind: ProblemKind;
  readonly detail: string;
}

export interface StreamReport {
  readonly stream: string;
  records: number;
  lastSeq: number;
  checkpoints: number;
  latestCheckpointSeq: number;
  /** Sorted by seq; the first is "the first bad seq". */
  problems: Problem[];
  /** MACs were checked (a keyring was given). */
  macsChecked: boolean;
  /** Checkpoint signatures were checked (a public key was given). */
  signaturesChecked: boolean;
  /** The chain state after the last record read (where a following segment continues). */
  end?: ChainStart;
}

/**
 * Where a stream's records begin when the ones before were archived and pruned (or live
 * in earlier archive segments): the chain value at `seq` (`hash`: the hash of a v1 record,
 * the seal of a v2 batch ending there) and the Merkle frontier over records 1..seq. It is trusted only as far as the signed checkpoint at `seq` vouches for
 * it (its head_hash and merkle_root), checked like every checkpoint.
 */
export interface ChainStart {
  readonly seq: number;
  readonly hash: string;
  readonly frontier: { size: number; stack: Array<string | null> };
}

export interface VerifyOptions {
  readonly keyring?: Keyring | null;
  readonly publicKey?: KeyObject | null;
  /** Begin after this point instead of at the genesis (docs/audit.md, "Archive"). */
  readonly from?: ChainStart | null;
}

const MAX_PROBLEMS = 1000;

/**
 * An entry of the input that could not be read as a record (an export line that is not
 * JSON): reported as `malformed` with `detail` (its position), and verification goes on.
 */
export class MalformedEntry {
  readonly detail: string;
  constructor(detail: string) {
    this.detail = detail;
  }
}

/** A v2 record as an object (its stored form parsed): the canonical members plus leaf, and seal/seal_first on a batch's last record. */
export interface V2Record extends AuditBody, ChainFields {
  leaf: string;
  seal?: string;
  seal_first?: number;
}

export type VerifyItem = string | ChainedRecord | V2Record | MalformedEntry;

function malformed(r: unknown): string | null {
  if (r === null || typeof r !== 'object') return 'not an object';
  const o = r as Record<string, unknown>;
  for (const f of CANONICAL_FIELDS) if (!(f in o)) return `missing field ${f}`;
  if (!isHex32(o.prev_hash) || !isHex32(o.mac) || !isHex32(o.hash)) return 'bad prev_hash/mac/hash';
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 1) return 'bad seq';
  if (typeof o.kid !== 'string') return 'bad kid';
  return null;
}

/** The chain fields the verifier's sequencing needs from a record. */
type Links = Pick<ChainedRecord, 'seq' | 'stream' | 'kid' | 'kind' | 'count' | 'lost_to' | 'prev_hash' | 'mac' | 'hash'>;

// The stored form of a sealed record (chain.ts): its canonical JSON with the closing brace
// replaced by these three members, each a fixed 64-hex-digit value, so the canonical bytes
// are the text before them plus "}" and the chain values sit at fixed offsets from the end.
const SUFFIX_LEN = ',"prev_hash":"'.length + 64 + '","mac":"'.length + 64 + '","hash":"'.length + 64 + '"}'.length;

/** The value of a top-level member of a record in its stored form, as text, or null when not found. */
function member(data: string, key: string, next: string, from: number): [string, number] | null {
  // `,"key":` can only be a top-level key here: inside a JSON string every quote is
  // escaped, so `,"` never occurs in one, and records hold no nested objects. Only an
  // authentic record (its MAC checked below) is trusted with what this finds.
  const a = data.indexOf(key, from);
  if (a < 0) return null;
  const b = data.indexOf(next, a + key.length);
  return b < 0 ? null : [data.slice(a + key.length, b), b];
}

function int(t: string | undefined): number {
  return t !== undefined && /^[0-9]{1,15}$/.test(t) ? Number(t) : NaN;
}

/**
 * The fast path for a record in the stored form, taken only with the keyring: the MAC and
 * hash are computed over the stored canonical bytes as they are, without JSON.parse and
 * without rebuilding the canonical form (together ~2/3 of a record's cost). Returns the
 * record's chain fields when it is authentic — its hash matches its content and its MAC
 * verifies with key[kid] — and belongs to `stream`; null otherwise, and the caller takes
 * the full path, which names what is wrong. Same verdicts: a MAC made with a key of the
 * ring is only ever over a canonical form (the writer's), so bytes that pass here are the
 * bytes the full path would rebuild; anything else fails here and goes the full path.
 */
export function authentic(data: string, streamMember: string, prevHex: string, keyring: Keyring, hasher: RecordHasher): Links | null {
  const end = data.length - SUFFIX_LEN;
  if (end < 2 || !data.startsWith(',"prev_hash":"', end) || !data.startsWith('","mac":"', end + 78) || !data.startsWith('","hash":"', end + 151) || !data.endsWith('"}')) return null;
  // mac and hash must equal what is computed below (lowercase hex); prev_hash is nearly
  // always the previous record's hash, checked as hex only when it is not.
  const prev = data.slice(end + 14, end + 78);
  if (prev !== prevHex && !isHex32(prev)) return null;
  const kid = member(data, ',"kid":"', '","kind":"', 0);
  const kind = kid && member(data, '","kind":"', '","latency_us":', kid[1]);
  const seq = kind && member(data, ',"seq":', ',"site":', kind[1]);
  if (seq === null || !data.startsWith(streamMember, data.indexOf(',"stream":', seq[1]))) return null;
  const key = keyring.get(kid![0]);
  if (key === undefined) return null;
  const mac = data.slice(end + 87, end + 151);
  const hash = data.slice(end + 161, end + 225);
  hasher.loadStored(prev, data, end);
  if (hasher.hash(mac) !== hash || hasher.mac(key) !== mac) return null;
  const count = member(data, ',"count":', ',"decision":', 0);
  const lost = count && member(data, ',"lost_to":', ',"method":', count[1]);
  const n = int(seq[0]);
  if (lost === null || !(n >= 1)) return null;
  return { seq: n, stream: '', kid: kid![0], kind: kind![0] as Links['kind'], count: int(count![0]), lost_to: lost[0] === 'null' ? null : int(lost[0]), prev_hash: prev, mac, hash };
}

/**
 * A v2 record's chain fields (v2.ts): what sequencing and sealing need. `leaf` is the
 * stored leaf; `consistent` whether the record's content hashes to it.
 */
interface V2Links {
  readonly v: 2;
  readonly seq: number;
  readonly stream: string;
  readonly kid: string;
  readonly kind: string;
  readonly count: number;
  readonly lost_to: number | null;
  readonly leaf: string;
  readonly consistent: boolean;
  readonly seal: string | null;
  readonly sealFirst: number;
}

const LEAF_MEMBER = ',"leaf":"';
const SEAL_MEMBER = '","seal":"';
const SEAL_FIRST_MEMBER = '","seal_first":';
const HEX64 = /^[0-9a-f]{64}$/;

/** A v2 record taken apart from its stored form; `kind`, `count` and `lost_to` (a restart's) are read only when asked for. */
class StoredV2Fields implements V2Links {
  readonly v = 2;
  readonly consistent = true;
  constructor(
    private readonly data: string,
    readonly seq: number,
    readonly stream: string,
    readonly kid: string,
    readonly leaf: string,
    readonly seal: string | null,
    readonly sealFirst: number,
  ) {}

  get kind(): string {
    return member(this.data, '","kind":"', '","latency_us":', 0)?.[0] ?? '';
  }

  get count(): number {
    return int(member(this.data, ',"count":', ',"decision":', 0)?.[0]);
  }

  get lost_to(): number | null {
    const t = member(this.data, ',"lost_to":', ',"method":', 0)?.[0];
    return t === 'null' ? null : int(t);
  }
}

/**
 * The leaf of a record in its stored form whose canonical part ends at `end`: the whole
 * text is encoded once into a reused buffer and its suffix (ASCII: one byte per character)
 * replaced by "}" — no substring, no second copy.
 */
export class StoredLeafHasher {
  private buf = Buffer.allocUnsafe(16384);

  leaf(data: string, end: number): string {
    const need = 1 + data.length * 3;
    if (need > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    const b = this.buf;
    b[0] = 0;
    const n = b.write(data, 1, 'utf8');
    const cut = 1 + n - (data.length - end);
    b[cut] = 0x7d; // "}"
    return hash('sha256', b.subarray(0, cut + 1), 'hex');
  }
}

/**
 * The fast path for a v2 record in its stored form, with or without the keyring: the leaf
 * is computed over the stored canonical bytes as they are (no JSON.parse, no canonical
 * form rebuilt) and the fields sequencing needs are read from the text. Returns null — and
 * the caller takes the full path, which decides — when the text is not a v2 stored record
 * of `stream` whose content hashes to its leaf. Same verdicts as the full path for whatever
 * the writer stored: its canonical bytes are the ones the full path rebuilds. A text that
 * is not canonical but hashes to its own (rewritten) leaf is taken as those bytes; its
 * leaf then differs from the sealed one, which the batch's seal and the checkpoints'
 * Merkle roots catch. (parseStoredV2 in v2.ts is the same reading; this one skips the
 * hex test of the leaf — equal to a computed digest, it is hex — and every substring the
 * common case does not need: it runs once per record on both verification paths.)
 */
export function storedV2Links(data: string, stream: string, streamMember: string, hasher: StoredLeafHasher): V2Links | null {
  const end = data.lastIndexOf(LEAF_MEMBER);
  if (end < 7 || !data.startsWith(',"v":2', end - 6)) return null;
  const after = end + LEAF_MEMBER.length + 64;
  let seal: string | null = null;
  let sealFirst = 0;
  if (data.length === after + 2 && data.charCodeAt(after) === 0x22 /* " */ && data.charCodeAt(after + 1) === 0x7d /* } */) {
    // Not the batch's last record.
  } else {
    if (!data.startsWith(SEAL_MEMBER, after) || !data.endsWith('}')) return null;
    seal = data.slice(after + SEAL_MEMBER.length, after + SEAL_MEMBER.length + 64);
    const f = after + SEAL_MEMBER.length + 64;
    if (!HEX64.test(seal) || !data.startsWith(SEAL_FIRST_MEMBER, f)) return null;
    const digits = data.slice(f + SEAL_FIRST_MEMBER.length, -1);
    if (!/^[1-9][0-9]{0,15}$/.test(digits)) return null;
    sealFirst = Number(digits);
    if (!Number.isSafeInteger(sealFirst)) return null;
  }
  // In canonical order …kid, kind…seq, site…stream, subject…v: a `,"name":` is only ever a member.
  const st = data.lastIndexOf(',"stream":', end);
  if (st < 0 || !data.startsWith(streamMember, st)) return null;
  const sq = data.lastIndexOf(',"seq":', st);
  if (sq < 0) return null;
  let i = sq + 7;
  let seq = 0;
  for (let c = data.charCodeAt(i); c >= 48 && c <= 57 && i - sq - 7 < 15; c = data.charCodeAt(++i)) seq = seq * 10 + (c - 48);
  if (i === sq + 7 || !(seq >= 1) || !data.startsWith(',"site":', i)) return null;
  const k = data.indexOf(',"kid":"');
  const ke = k < 0 ? -1 : data.indexOf('","kind":"', k + 8);
  if (ke < 0) return null;
  const leaf = data.slice(end + LEAF_MEMBER.length, after);
  if (hasher.leaf(data, end) !== leaf) return null;
  return new StoredV2Fields(data, seq, stream, data.slice(k + 8, ke), leaf, seal, sealFirst);
}

function malformedV2(o: Record<string, unknown>): string | null {
  for (const f of CANONICAL_FIELDS) if (!(f in o)) return `missing field ${f}`;
  if (!isHex32(o.leaf)) return 'bad leaf';
  if (o.seal !== undefined || o.seal_first !== undefined) {
    if (!isHex32(o.seal) || typeof o.seal_first !== 'number' || !Number.isSafeInteger(o.seal_first) || o.seal_first < 1) return 'bad seal/seal_first';
  }
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 1) return 'bad seq';
  if (typeof o.kid !== 'string') return 'bad kid';
  return null;
}

/** A v1 record whose MAC failed but whose hash is self-consistent: what follows decides "modified" or "wrong_key". */
interface PendingMac {
  readonly seq: number;
  readonly hash: string;
  readonly detail: string;
}

/**
 * The v2 records read since the last seal (or v1 record): the batch being collected.
 * `intact`: its records follow the unit before without a seq missing in between or
 * inside, and the chain value before it is known — only then can its seal be checked.
 */
interface Run {
  readonly first: number;
  readonly prev: string;
  intact: boolean;
  readonly leaves: string[];
  readonly kid: string;
  /** The first record of the run naming another key than its first record. */
  otherKid: { seq: number; kid: string } | null;
  /** What the unit before ended in failed its own check: a failing seal here is at the boundary. */
  readonly prevFailed: boolean;
  /** A v1 record just before whose MAC failed: this batch's seal decides (see PendingMac). */
  pending: PendingMac | null;
}

export async function verifyStream(stream: string, records: AsyncIterable<VerifyItem> | Iterable<VerifyItem>, checkpoints: readonly Checkpoint[], opts: VerifyOptions = {}): Promise<StreamReport> {
  const keyring = opts.keyring ?? null;
  const pub = opts.publicKey ?? null;
  const rep: StreamReport = { stream, records: 0, lastSeq: 0, checkpoints: checkpoints.length, latestCheckpointSeq: 0, problems: [], macsChecked: keyring !== null, signaturesChecked: pub !== null };
  const problem = (seq: number, kind: ProblemKind, detail: string) => {
    if (rep.problems.length < MAX_PROBLEMS) rep.problems.push({ seq, kind, detail });
  };

  // Checkpoints: signatures first; the valid ones are checked against the records below.
  const cps: Checkpoint[] = [];
  for (const c of checkpoints) {
    if (c.stream !== stream) continue;
    if (pub !== null && !verifyCheckpoint(c, pub)) {
      problem(c.seq, 'bad_checkpoint_signature', `checkpoint at seq ${c.seq} does not verify with the public key`);
      continue;
    }
    cps.push(c);
    if (c.seq > rep.latestCheckpointSeq) rep.latestCheckpointSeq = c.seq;
  }
  cps.sort((a, b) => a.seq - b.seq);
  let cpIdx = 0;

  const from = opts.from ?? null;
  let expected = 1;
  // The chain value after the last unit read (a v1 record's hash, a v2 batch's seal), and
  // whether it is known: after records that no seal covers it is not.
  let chain = genesis(stream).toString('hex');
  let chainKnown = true;
  // The unit that ends at `chain` failed its own check (hash, MAC, seal) or could not be checked.
  let lastFailed = false;
  let merkle = new MerkleAccumulator();
  if (from !== null) {
    expected = from.seq + 1;
    chain = from.hash;
    merkle = MerkleAccumulator.from(from.frontier);
    rep.lastSeq = from.seq;
    // The start is only as good as the signed checkpoint at its seq.
    const cp = cps.find((c) => c.seq === from.seq);
    if (cp === undefined) problem(from.seq, 'modified', `the records before seq ${from.seq + 1} were archived, but no (valid) signed checkpoint at seq ${from.seq} vouches for where they end`);
    else if (merkle.size !== from.seq || cp.head_hash !== from.hash || cp.merkle_root !== merkle.rootHex()) problem(from.seq, 'modified', `the archived chain's end at seq ${from.seq} does not match the signed checkpoint at seq ${from.seq}`);
  }
  const hasher = new RecordHasher();
  const leafHasher = new LeafHasher();
  const storedLeaves = new StoredLeafHasher();
  // Which seqs below `expected` have been seen, without a set of every seq (V8 caps a Set
  // at 2^24 entries, a busy gateway's day): all of them except those skipped (missing so
  // far), those a restart record declared lost and those beyond the skipped set's cap
  // (ranges in `unseen`), plus those that arrived late.
  const skipped = new Set<number>();
  const unseen: Array<[number, number]> = [];
  const late = new Set<number>();
  const seen = (seq: number) => late.has(seq) || (!skipped.has(seq) && !unseen.some(([a, b]) => seq >= a && seq <= b));
  let pendingMac: PendingMac | null = null;
  // A pending MAC handed to the batch that begins right after it.
  let pendingForRun: PendingMac | null = null;
  let run: Run | null = null;

  const checkCheckpoints = (seq: number, head: string | null) => {
    while (cpIdx < cps.length && (cps[cpIdx] as Checkpoint).seq < seq) {
      // The chain skipped a checkpointed seq; deletion/reordering is reported elsewhere.
      cpIdx++;
    }
    while (cpIdx < cps.length && (cps[cpIdx] as Checkpoint).seq === seq) {
      const c = cps[cpIdx++] as Checkpoint;
      if (head === null) problem(seq, 'modified', `record ${seq} carries no seal, but the signed checkpoint at seq ${seq} says a batch ends there: its seal was removed`);
      else if (c.head_hash !== head) problem(seq, 'modified', `record ${seq} does not match the head hash of the signed checkpoint at seq ${seq}`);
      else if (c.merkle_root !== merkle.rootHex()) problem(seq, 'modified', `the Merkle root over records 1..${seq} does not match the signed checkpoint at seq ${seq}: an earlier record was rewritten`);
    }
  };

  /** A v1 record whose MAC failed, once what follows it is known: linked → "wrong_key", else "modified". */
  const settle = (p: PendingMac, linked: boolean | null, broken = `the batch after it is not sealed over its hash`) => {
    if (linked === false) problem(p.seq, 'modified', `record ${p.seq} was changed: ${p.detail}, and ${broken}`);
    else problem(p.seq, 'wrong_key', p.detail);
  };

  /**
   * Ends the run without a seal (a v1 record, a seq jump or the stream's end came first):
   * its records are not covered by any seal. When seqs are missing in or before it, the
   * missing seqs are the problem named (its sealing record may be among them); otherwise
   * the batch lost its seal or its sealing record: the tail of the stream at its end,
   * something inside it before.
   */
  const closeUnsealed = (atEnd: boolean) => {
    const r = run as Run;
    run = null;
    const last = r.first + r.leaves.length - 1;
    if (r.intact || atEnd) {
      const what = r.first === last ? `record ${r.first} is` : `records ${r.first}..${last} are`;
      if (atEnd) problem(r.first, 'truncated', `the stream ends inside a batch: ${what} not covered by a seal (the record that sealed the batch is missing, or its seal was removed)`);
      else problem(r.first, 'modified', `${what} not covered by a seal: the batch's seal was removed, or the record that carried it`);
    }
    if (r.pending !== null) settle(r.pending, null);
    chainKnown = false;
    lastFailed = true;
  };

  /** The record carrying a seal ends the run: checks seal_first, the kids, the root and (with the keyring) the seal. */
  const closeSealed = (seq: number, kid: string, seal: string, f: number) => {
    const r = run as Run;
    run = null;
    let failed = false;
    if (r.otherKid !== null || kid !== r.kid) {
      const o = r.otherKid ?? { seq, kid };
      problem(o.seq, 'modified', `record ${o.seq} names key ${JSON.stringify(o.kid)} but record ${r.first} of its batch names ${JSON.stringify(r.kid)}: a batch is sealed under one key`);
      failed = true;
    }
    if (f !== r.first) {
      // seal_first is not where the collected run begins. With seqs missing in or before
      // the run, they are the problem named; otherwise the seal or the records were changed.
      if (r.intact) {
        if (f > r.first && f <= seq) problem(r.first, 'modified', `${r.first === f - 1 ? `record ${r.first} is` : `records ${r.first}..${f - 1} are`} not covered by a seal: the seal of their batch was removed, or record ${seq}'s seal_first was changed`);
        else problem(seq, 'modified', `record ${seq}'s seal covers seqs ${f}..${seq}, but its batch begins at seq ${r.first}: the seal or its seal_first was changed`);
      }
      if (r.pending !== null) settle(r.pending, null);
      failed = true;
    } else if (!r.intact) {
      // The chain value before the batch is a seal of missing records: the seal cannot be
      // checked (the missing records are the problem named).
      if (r.pending !== null) settle(r.pending, null);
      failed = true;
    } else if (keyring !== null && !failed) {
      const root = rootOfLeaves(r.leaves);
      const key = keyring.get(kid);
      const what = r.first === seq ? `the batch of record ${seq}` : `batch ${r.first}..${seq}`;
      if (key === undefined) {
        problem(r.first, 'wrong_key', `${what} names key id ${JSON.stringify(kid)}, which is not in the keyring`);
        if (r.pending !== null) settle(r.pending, null);
        failed = true;
      } else if (sealOf(key, r.prev, r.first, seq, root) !== seal) {
        const other = keyring.ids().find((id) => id !== kid && sealOf(keyring.get(id) as MacKey, r.prev, r.first, seq, root) === seal);
        if (other !== undefined) {
          problem(r.first, 'wrong_key', `${what} claims key ${JSON.stringify(kid)} but its seal was made with key ${JSON.stringify(other)}`);
          if (r.pending !== null) settle(r.pending, true);
        } else if (r.pending !== null) settle(r.pending, false);
        else if (r.prevFailed) problem(r.first - 1, 'modified', `the seal of ${what} does not verify over the chain value at seq ${r.first - 1}: what ends there was changed`);
        else problem(r.first, 'modified', `the seal of ${what} does not verify with key ${JSON.stringify(kid)}: a record, a leaf or the seal of the batch was changed`);
        failed = true;
      } else if (r.pending !== null) settle(r.pending, true);
    } else if (r.pending !== null) settle(r.pending, null);
    chain = seal;
    chainKnown = true;
    lastFailed = failed;
  };

  const streamMember = `,"stream":${JSON.stringify(stream)},"subject":`;
  for await (const item of records) {
    if (item instanceof MalformedEntry) {
      problem(expected, 'malformed', item.detail);
      continue;
    }
    // A v1 record (fast path, then full path) or a v2 one.
    let r: Links | null = null;
    let r2: V2Links | null = null;
    let selfConsistent = true;
    let macChecked = false;
    // The hash of a v1 record's content as computed here (the stored one when self-consistent).
    let hHex = '';
    if (typeof item === 'string') {
      r2 = storedV2Links(item, stream, streamMember, storedLeaves);
      if (r2 === null && keyring !== null) r = authentic(item, streamMember, chain, keyring, hasher);
    }
    if (r !== null) {
      hHex = r.hash;
      r.stream = stream;
      macChecked = true;
    } else if (r2 === null) {
      let full: Record<string, unknown>;
      try {
        full = (typeof item === 'string' ? JSON.parse(item) : item) as Record<string, unknown>;
      } catch {
        problem(expected, 'malformed', 'a record is not valid JSON');
        continue;
      }
      const isV2 = full !== null && typeof full === 'object' && full.v === V2;
      const bad = full === null || typeof full !== 'object' ? 'not an object' : isV2 ? malformedV2(full) : malformed(full);
      if (bad !== null) {
        problem(typeof full?.seq === 'number' ? full.seq : expected, 'malformed', `record: ${bad}`);
        continue;
      }
      let canon: string;
      try {
        canon = canonical(full as unknown as ChainedRecord);
      } catch (err) {
        problem(full.seq as number, 'malformed', `record ${full.seq as number}: ${(err as Error).message}`);
        continue;
      }
      if (isV2) {
        const leaf = full.leaf as string;
        r2 = { v: 2, seq: full.seq as number, stream: full.stream as string, kid: full.kid as string, kind: full.kind as string, count: full.count as number, lost_to: full.lost_to as number | null, leaf, consistent: leafHasher.leaf(canon) === leaf, seal: full.seal === undefined ? null : (full.seal as string), sealFirst: (full.seal_first as number | undefined) ?? 0 };
      } else {
        r = full as unknown as ChainedRecord;
        hasher.load(r.prev_hash, canon);
        hHex = hasher.hash(r.mac);
        selfConsistent = hHex === r.hash;
      }
    }
    rep.records++;
    const rec = (r2 ?? r) as V2Links | Links;
    const seq = rec.seq;

    if (pendingMac !== null) {
      const p: PendingMac = pendingMac;
      pendingMac = null;
      // A v1 record tells by its prev_hash; a v2 batch right after tells by its seal.
      if (r2 !== null && seq === p.seq + 1 && seq === expected && rec.stream === stream) pendingForRun = p;
      else settle(p, r2 !== null || !(seq === p.seq + 1 && (r as Links).prev_hash !== p.hash), `record ${seq} does not link to it`);
    }

    if (rec.stream !== stream) {
      problem(seq, 'inserted', `record claims stream ${JSON.stringify(rec.stream)}`);
      continue;
    }
    if (seq < expected) {
      if (from !== null && seq <= from.seq) problem(seq, 'inserted', `a record with seq ${seq}, at or before seq ${from.seq} where this part of the stream begins`);
      else if (seen(seq)) problem(seq, 'inserted', `a second record with seq ${seq}`);
      else {
        problem(seq, 'reordered', `seq ${seq} appears after seq ${expected - 1}`);
        skipped.delete(seq);
        late.add(seq);
      }
      continue;
    }
    let skip = false;
    if (seq > expected) {
      const first = expected;
      // A v1 restart record names the chain value it continues from; a v2 one is sealed over it.
      if (rec.kind === 'restart' && rec.lost_to === seq - 1 && rec.count === seq - first && (r2 !== null || (chainKnown && (rec as Links).prev_hash === chain))) {
        // Records before the crash that no seal covers were not lost in it (a batch is
        // stored whole): named as such before the declared range.
        if (run !== null) closeUnsealed(false);
        // A checkpoint is stored in the same transaction as the records it covers: a
        // declared loss inside a signed checkpoint's range is a deleted tail called a crash.
        let covered: Checkpoint | null = null;
        for (const c of cps) if (c.seq >= first && c.seq < seq) covered = c;
        if (covered !== null) problem(first, 'truncated', `records ${first}..${covered.seq} are covered by the signed checkpoint at seq ${covered.seq} but missing; the restart record at seq ${seq} declares seqs ${first}..${seq - 1} lost in a crash, which a checkpointed record never is`);
        else problem(first, 'gap', `seqs ${first}..${seq - 1} were assigned but never stored (at most ${seq - first} records lost in a crash), declared by the restart record at seq ${seq}`);
        unseen.push([first, seq - 1]);
      } else {
        let s = first;
        for (; s < seq && skipped.size < 1_000_000; s++) skipped.add(s);
        if (s < seq) unseen.push([s, seq - 1]);
        skip = true;
      }
    }

    if (r2 !== null) {
      if (run === null) {
        run = { first: seq, prev: chain, intact: chainKnown && !skip, leaves: [], kid: r2.kid, otherKid: null, prevFailed: lastFailed, pending: pendingForRun };
      } else {
        if (skip) run.intact = false;
        if (run.otherKid === null && r2.kid !== run.kid) run.otherKid = { seq, kid: r2.kid };
      }
      pendingForRun = null;
      run.leaves.push(r2.leaf);
      if (!r2.consistent) problem(seq, 'modified', `record ${seq}'s content does not match its leaf`);
      merkle.pushLeaf(r2.leaf);
      expected = seq + 1;
      rep.lastSeq = seq;
      if (r2.seal === null) checkCheckpoints(seq, null);
      else {
        closeSealed(seq, r2.kid, r2.seal, r2.sealFirst);
        checkCheckpoints(seq, r2.seal);
      }
      continue;
    }

    const v1 = r as Links;
    if (run !== null) closeUnsealed(false);
    if (!skip && chainKnown && v1.prev_hash !== chain) {
      problem(seq - 1 >= 1 ? seq - 1 : seq, 'modified', seq === 1 ? 'record 1 does not start from the genesis hash' : `record ${seq - 1} does not hash to record ${seq}'s prev_hash`);
    }
    lastFailed = !selfConsistent;
    if (!selfConsistent) {
      problem(seq, 'modified', `record ${seq}'s content does not match its hash`);
    } else if (keyring !== null && !macChecked) {
      const key = keyring.get(v1.kid);
      if (key === undefined) {
        problem(seq, 'wrong_key', `record ${seq} names key id ${JSON.stringify(v1.kid)}, which is not in the keyring`);
        lastFailed = true;
      } else if (hasher.mac(key) !== v1.mac) {
        lastFailed = true;
        const other = keyring.ids().find((id) => id !== v1.kid && hasher.mac(keyring.get(id) as MacKey) === v1.mac);
        if (other !== undefined) problem(seq, 'wrong_key', `record ${seq} claims key ${JSON.stringify(v1.kid)} but its MAC was made with key ${JSON.stringify(other)}`);
        else pendingMac = { seq, hash: v1.hash, detail: `the MAC of record ${seq} does not verify with key ${JSON.stringify(v1.kid)}` };
      }
    }

    merkle.push(hHex);
    chain = hHex;
    chainKnown = true;
    expected = seq + 1;
    rep.lastSeq = seq;
    checkCheckpoints(seq, hHex);
  }
  if (run !== null) closeUnsealed(true);
  if (pendingMac !== null) {
    const p = pendingMac as PendingMac;
    const cp = cps.find((c) => c.seq === p.seq);
    if (cp !== undefined && cp.head_hash !== p.hash) problem(p.seq, 'modified', p.detail);
    else problem(p.seq, 'wrong_key', p.detail);
  }
  if (skipped.size > 0) {
    const list = [...skipped].sort((a, b) => a - b);
    // Report contiguous runs.
    let start = list[0] as number;
    let last = start;
    for (let i = 1; i <= list.length; i++) {
      const s = list[i];
      if (s === last + 1) {
        last = s;
        continue;
      }
      problem(start, 'deleted', start === last ? `record ${start} is missing` : `records ${start}..${last} are missing`);
      if (s !== undefined) start = last = s;
    }
  }
  rep.end = { seq: rep.lastSeq, hash: chain, frontier: merkle.state() };
  if (rep.latestCheckpointSeq > rep.lastSeq) {
    problem(rep.lastSeq + 1, 'truncated', `the stream ends at seq ${rep.lastSeq} but a signed checkpoint covers seq ${rep.latestCheckpointSeq}`);
  }
  rep.problems.sort((a, b) => a.seq - b.seq);
  return rep;
}

export function formatReport(r: StreamReport): string {
  const head = `stream ${r.stream}: ${r.records} records, last seq ${r.lastSeq}, ${r.checkpoints} checkpoint(s) (latest seq ${r.latestCheckpointSeq})${r.macsChecked ? '' : ', MACs not checked (no keyring)'}${r.signaturesChecked ? '' : ', checkpoint signatures not checked (no public key)'}`;
  if (r.problems.length === 0) return `${head}: OK`;
  const lines = [`${head}: ${r.problems.length} problem(s); first bad seq ${(r.problems[0] as Problem).seq}`];
  for (const p of r.problems.slice(0, 20)) lines.push(`  seq ${p.seq}: ${p.kind}: ${p.detail}`);
  if (r.problems.length > 20) lines.push(`  … ${r.problems.length - 20} more`);
  return lines.join('\n');
}
