/**
 * The verifier (docs/audit.md, "Verifying"). It reads one stream's records in storage
 * order (an export's line order, a store's insertion order) plus its checkpoints, and
 * names every problem with the seq it concerns:
 *
 *   modified   a record's content does not match its hash, or its hash does not match the
 *              next record's prev_hash / a checkpoint's head or Merkle root
 *   inserted   a second record with a seq already seen
 *   deleted    seqs missing from the stream (and never seen later)
 *   reordered  a seq that appears after a higher one
 *   truncated  the stream ends before the seq of a signed checkpoint
 *   wrong_key  the MAC does not verify with key[kid] (unknown kid, another key, or a
 *              self-consistent record whose MAC was made with a key not in the ring)
 *   bad_checkpoint_signature  a checkpoint whose Ed25519 signature does not verify
 *   gap        seqs lost in a crash, declared by the restart record that follows them
 *              (bounded, detected loss — reported, never silently valid); a declared
 *              range that a signed checkpoint covers is `truncated` instead: a record a
 *              checkpoint vouched for was stored, so it was deleted, not lost
 *   malformed  an entry that is not a record (not JSON, a missing field), with its position
 *
 * Without the HMAC keyring (a third party) MACs are not checked; hashes, links, seqs
 * and signed checkpoints are, which detects rewriting and truncation up to the latest
 * checkpoint.
 */
import type { KeyObject } from 'node:crypto';
import { canonical, genesis, isHex32 } from './canonical.js';
import { RecordHasher, type MacKey } from './chain-hash.js';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import type { Keyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import { CANONICAL_FIELDS, type ChainedRecord } from './record.js';

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
 * in earlier archive segments): the record hash at `seq` and the Merkle frontier over
 * records 1..seq. It is trusted only as far as the signed checkpoint at `seq` vouches for
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

export type VerifyItem = string | ChainedRecord | MalformedEntry;

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
  let prevHex = genesis(stream).toString('hex');
  let merkle = new MerkleAccumulator();
  if (from !== null) {
    expected = from.seq + 1;
    prevHex = from.hash;
    merkle = MerkleAccumulator.from(from.frontier);
    rep.lastSeq = from.seq;
    // The start is only as good as the signed checkpoint at its seq.
    const cp = cps.find((c) => c.seq === from.seq);
    if (cp === undefined) problem(from.seq, 'modified', `the records before seq ${from.seq + 1} were archived, but no (valid) signed checkpoint at seq ${from.seq} vouches for where they end`);
    else if (merkle.size !== from.seq || cp.head_hash !== from.hash || cp.merkle_root !== merkle.rootHex()) problem(from.seq, 'modified', `the archived chain's end at seq ${from.seq} does not match the signed checkpoint at seq ${from.seq}`);
  }
  const hasher = new RecordHasher();
  // Which seqs below `expected` have been seen, without a set of every seq (V8 caps a Set
  // at 2^24 entries, a busy gateway's day): all of them except those skipped (missing so
  // far), those a restart record declared lost and those beyond the skipped set's cap
  // (ranges in `unseen`), plus those that arrived late.
  const skipped = new Set<number>();
  const unseen: Array<[number, number]> = [];
  const late = new Set<number>();
  const seen = (seq: number) => late.has(seq) || (!skipped.has(seq) && !unseen.some(([a, b]) => seq >= a && seq <= b));
  // A record whose MAC failed but whose hash is self-consistent: the next record decides
  // between "modified" (the link breaks) and "wrong_key" (it holds).
  let pendingMac: { seq: number; hash: string; detail: string } | null = null;

  const checkCheckpoints = (seq: number, hash: string) => {
    while (cpIdx < cps.length && (cps[cpIdx] as Checkpoint).seq < seq) {
      // The chain skipped a checkpointed seq; deletion/reordering is reported elsewhere.
      cpIdx++;
    }
    while (cpIdx < cps.length && (cps[cpIdx] as Checkpoint).seq === seq) {
      const c = cps[cpIdx++] as Checkpoint;
      if (c.head_hash !== hash) problem(seq, 'modified', `record ${seq} does not match the head hash of the signed checkpoint at seq ${seq}`);
      else if (c.merkle_root !== merkle.rootHex()) problem(seq, 'modified', `the Merkle root over records 1..${seq} does not match the signed checkpoint at seq ${seq}: an earlier record was rewritten`);
    }
  };

  const streamMember = `,"stream":${JSON.stringify(stream)},"subject":`;
  for await (const item of records) {
    if (item instanceof MalformedEntry) {
      problem(expected, 'malformed', item.detail);
      continue;
    }
    let r: Links | null = typeof item === 'string' && keyring !== null ? authentic(item, streamMember, prevHex, keyring, hasher) : null;
    let selfConsistent = true;
    let macChecked = false;
    // The hash of the record's content as computed here (the stored one when self-consistent).
    let hHex: string;
    if (r !== null) {
      hHex = r.hash;
      r.stream = stream;
      macChecked = true;
    } else {
      let full: ChainedRecord;
      try {
        full = (typeof item === 'string' ? JSON.parse(item) : item) as ChainedRecord;
      } catch {
        problem(expected, 'malformed', 'a record is not valid JSON');
        continue;
      }
      const bad = malformed(full);
      if (bad !== null) {
        problem(typeof full?.seq === 'number' ? full.seq : expected, 'malformed', `record: ${bad}`);
        continue;
      }
      let canon: string;
      try {
        canon = canonical(full);
      } catch (err) {
        problem(full.seq, 'malformed', `record ${full.seq}: ${(err as Error).message}`);
        continue;
      }
      r = full;
      hasher.load(r.prev_hash, canon);
      hHex = hasher.hash(r.mac);
      selfConsistent = hHex === r.hash;
    }
    rep.records++;
    const seq = r.seq;

    if (pendingMac !== null) {
      const p: { seq: number; hash: string; detail: string } = pendingMac;
      pendingMac = null;
      if (seq === p.seq + 1 && r.prev_hash !== p.hash) problem(p.seq, 'modified', `record ${p.seq} was changed: ${p.detail}, and record ${seq} does not link to it`);
      else problem(p.seq, 'wrong_key', p.detail);
    }

    if (r.stream !== stream) {
      problem(seq, 'inserted', `record claims stream ${JSON.stringify(r.stream)}`);
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
    if (seq > expected) {
      const first = expected;
      if (r.kind === 'restart' && r.lost_to === seq - 1 && r.count === seq - first && r.prev_hash === prevHex) {
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
      }
    } else if (r.prev_hash !== prevHex) {
      problem(seq - 1 >= 1 ? seq - 1 : seq, 'modified', seq === 1 ? 'record 1 does not start from the genesis hash' : `record ${seq - 1} does not hash to record ${seq}'s prev_hash`);
    }

    if (!selfConsistent) {
      problem(seq, 'modified', `record ${seq}'s content does not match its hash`);
    } else if (keyring !== null && !macChecked) {
      const key = keyring.get(r.kid);
      if (key === undefined) problem(seq, 'wrong_key', `record ${seq} names key id ${JSON.stringify(r.kid)}, which is not in the keyring`);
      else if (hasher.mac(key) !== r.mac) {
        const other = keyring.ids().find((id) => id !== r.kid && hasher.mac(keyring.get(id) as MacKey) === r.mac);
        if (other !== undefined) problem(seq, 'wrong_key', `record ${seq} claims key ${JSON.stringify(r.kid)} but its MAC was made with key ${JSON.stringify(other)}`);
        else pendingMac = { seq, hash: r.hash, detail: `the MAC of record ${seq} does not verify with key ${JSON.stringify(r.kid)}` };
      }
    }

    merkle.push(hHex);
    prevHex = hHex;
    expected = seq + 1;
    rep.lastSeq = seq;
    checkCheckpoints(seq, hHex);
  }
  if (pendingMac !== null) {
    const p = pendingMac as { seq: number; hash: string; detail: string };
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
  rep.end = { seq: rep.lastSeq, hash: prevHex, frontier: merkle.state() };
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
