/**
 * Where the verifier reads from: a store (every stream, storage order) or an export file.
 *
 * Export format (JSON Lines, docs/audit.md): the first line is
 * `{"format":"gatehouse-audit-export","v":1,"exported_at":…}`; then, stream by stream,
 * `{"record":{…}}` lines in storage order followed by that stream's `{"checkpoint":{…}}`
 * lines. A record line holds the record's stored form as the store keeps it (v2: the
 * canonical members, leaf, and seal/seal_first on a batch's last record; v1: every chain
 * field, prev_hash, mac, hash).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Checkpoint } from './checkpoint.js';
import type { ChainedRecord } from './record.js';
import type { AuditStore } from './store/types.js';
import type { StreamState } from './stream-state.js';
import { MalformedEntry, verifyStream, type StreamReport, type VerifyItem, type VerifyOptions } from './verify.js';

const PAGE = 10_000;

/** A stream's stored records (their `data`) in storage order, page by page: what verify, export and proofs read. */
export async function* storeRecords(store: AuditStore, stream: string): AsyncGenerator<string> {
  let after = 0;
  for (;;) {
    const rows = await store.readRaw(stream, after, PAGE);
    for (const r of rows) yield r.data;
    if (rows.length < PAGE) return;
    after = (rows[rows.length - 1] as { id: number }).id;
  }
}

/** What the verifier knows about streams besides the store (docs/audit.md, "Verifying"). */
export interface KnownStreams {
  /** Streams that must exist (the state dir's stream, the archive's): one without records fails. */
  readonly streams?: readonly string[];
  /**
   * The instance's state file: seqs it reserved beyond the stored head while its writer is
   * not running (a crash not yet declared by a restart) are reported as a `gap`.
   */
  readonly state?: StreamState | null;
  /** Whether the writer that reserved them still runs (default: a live process with that pid). */
  readonly alive?: (pid: number) => boolean;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A faster way to verify one stream (verify-parallel.ts): its report when it finds no
 * problem, null when the stream must be verified sequentially.
 */
export type FastStreamVerifier = (stream: string, checkpoints: readonly Checkpoint[], opts: VerifyOptions) => Promise<StreamReport | null>;

export async function verifyStore(store: AuditStore, opts: VerifyOptions, known: KnownStreams = {}, fast?: FastStreamVerifier): Promise<StreamReport[]> {
  const out: StreamReport[] = [];
  const all = new Set(await store.streams());
  for (const s of known.streams ?? []) all.add(s);
  for (const s of [...all].sort()) {
    // A stream whose oldest records were archived and pruned begins after the prune's anchor.
    const pruned = await store.prunedTo(s);
    const from = pruned === null ? null : { seq: pruned.seq, hash: pruned.hash, frontier: pruned.frontier };
    const cps = await store.checkpoints(s);
    const rep = (fast === undefined ? null : await fast(s, cps, { ...opts, from })) ?? (await verifyStream(s, storeRecords(store, s), cps, { ...opts, from }));
    if (from === null) noRecords(rep, known.streams?.includes(s) === true ? 'the state directory names it' : 'it has checkpoints or archive anchors');
    else if (rep.records === 0 && rep.problems.length === 0 && rep.checkpoints === 0) {
      // Pruned through the anchor, and nothing left: not even the checkpoint at the prune's
      // seq, which a prune always keeps (it vouches for the anchor).
      rep.problems.push({ seq: from.seq, kind: 'deleted', detail: `stream ${s} was pruned through seq ${from.seq}, but the checkpoint a prune keeps there is gone too, and no record is left: a wiped store` });
    }
    const st = known.state;
    if (st !== undefined && st !== null && st.stream === s && st.reserved > rep.lastSeq && rep.records > 0) {
      const pid = st.pid ?? null;
      if (pid === null || !(known.alive ?? processAlive)(pid)) {
        // The writer reserved these seqs and did not stop cleanly (a clean stop hands the
        // reservation back): until a restart declares them, verification names them itself.
        rep.problems.push({
          seq: rep.lastSeq + 1,
          kind: 'gap',
          detail: `seqs ${rep.lastSeq + 1}..${st.reserved} were reserved by a writer that did not stop cleanly${pid === null ? '' : ` (pid ${pid} is not running)`}: at most ${st.reserved - rep.lastSeq} records may have been lost in a crash; no restart record has declared it yet`,
        });
        rep.problems.sort((a, b) => a.seq - b.seq);
      }
    }
    out.push(rep);
  }
  return out;
}

export async function exportStore(store: AuditStore, file: string, streams?: readonly string[]): Promise<{ records: number; checkpoints: number }> {
  const out = createWriteStream(file, { mode: 0o600 });
  let records = 0;
  let checkpoints = 0;
  const write = async (line: string) => {
    if (!out.write(line + '\n')) await once(out, 'drain');
  };
  const list = streams ?? (await store.streams());
  // The header names the streams: a verifier then fails a listed stream with no records.
  await write(JSON.stringify({ format: 'gatehouse-audit-export', v: 1, exported_at: new Date().toISOString(), streams: list }));
  for (const s of list) {
    for await (const data of storeRecords(store, s)) {
      await write(`{"record":${data}}`);
      records++;
    }
    for (const c of await store.checkpoints(s)) {
      await write(JSON.stringify({ checkpoint: c }));
      checkpoints++;
    }
  }
  out.end();
  await once(out, 'finish');
  return { records, checkpoints };
}

type ExportEntry =
  | { readonly line: number; readonly stream: string; readonly record: string | ChainedRecord; readonly checkpoint?: undefined; readonly malformed?: undefined }
  | { readonly line: number; readonly stream: string; readonly checkpoint: Checkpoint; readonly record?: undefined; readonly malformed?: undefined }
  | { readonly line: number; readonly stream?: undefined; readonly malformed: string; readonly record?: undefined; readonly checkpoint?: undefined };

/** The export's header: the streams it holds (exports written before this member existed have none). */
interface ExportHeader {
  readonly streams: readonly string[] | null;
}

/**
 * The entries of an export, in line order, read as a stream (nothing kept): the header is
 * checked first. A record line `{"record":…}` gives the record's text as it is (what the
 * store held), so the verifier can take its fast path over those bytes. A line that is not
 * JSON, or JSON that is neither a record nor a checkpoint, is a `malformed` entry with its
 * line number: it is reported, and the rest is read.
 */
async function* exportEntries(file: string, header?: (h: ExportHeader) => void): AsyncGenerator<ExportEntry> {
  const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let first = true;
  let n = 0;
  for await (const line of rl) {
    n++;
    if (line === '') continue;
    let o: { format?: string; streams?: unknown; record?: ChainedRecord; checkpoint?: Checkpoint };
    try {
      // A line that is JSON but not an object (null, a number) is an entry of neither kind.
      o = Object(JSON.parse(line)) as typeof o;
    } catch {
      if (first) throw new Error(`${file} is not a gatehouse audit export (line ${n} is not JSON)`);
      yield { line: n, malformed: `line ${n} of the export is not JSON` };
      continue;
    }
    if (first) {
      first = false;
      if (o.format !== 'gatehouse-audit-export') throw new Error(`${file} is not a gatehouse audit export`);
      header?.({ streams: Array.isArray(o.streams) && o.streams.every((x) => typeof x === 'string') ? (o.streams as string[]) : null });
      continue;
    }
    if (o.record !== undefined) {
      // The line is exactly {"record":<text>} (one member, as exportStore writes it): keep <text>.
      const whole = line.startsWith('{"record":') && line.endsWith('}') && Object.keys(o).length === 1;
      yield { line: n, stream: String((o.record as { stream?: unknown } | null)?.stream), record: whole ? line.slice(10, -1) : o.record };
    } else if (o.checkpoint !== undefined) {
      yield { line: n, stream: String((o.checkpoint as { stream?: unknown } | null)?.stream), checkpoint: o.checkpoint };
    } else {
      yield { line: n, malformed: `line ${n} of the export is neither a record nor a checkpoint` };
    }
  }
}

/**
 * One stream's records of an export, in line order, read as a stream. `owners` names the
 * stream each malformed line is reported under (the stream of the entry before it).
 */
export async function* exportRecords(file: string, stream: string, owners?: ReadonlyMap<number, string>): AsyncGenerator<VerifyItem> {
  for await (const e of exportEntries(file)) {
    if (e.malformed !== undefined) {
      if (owners?.get(e.line) === stream) yield new MalformedEntry(e.malformed);
    } else if (e.record !== undefined && e.stream === stream) yield e.record;
  }
}

/**
 * Verifies an export in constant memory, whatever its size: a first pass collects the
 * streams and their checkpoints (they follow the records, and the verifier needs them
 * first), then each stream's records are read again and verified as they stream by. A
 * stream the header lists without a single record fails (a wiped stream is not an
 * empty one); a line that cannot be read is reported under the stream around it.
 */
export async function verifyExport(file: string, opts: VerifyOptions): Promise<StreamReport[]> {
  const streams = new Map<string, Checkpoint[]>();
  const counts = new Map<string, number>();
  const owners = new Map<number, string>();
  let pending: number[] = [];
  let last: string | null = null;
  let listed: readonly string[] | null = null;
  for await (const e of exportEntries(file, (h) => (listed = h.streams))) {
    if (e.malformed !== undefined) {
      if (last === null) pending.push(e.line);
      else owners.set(e.line, last);
      continue;
    }
    last = e.stream;
    for (const l of pending) owners.set(l, e.stream);
    pending = [];
    let cps = streams.get(e.stream);
    if (cps === undefined) streams.set(e.stream, (cps = []));
    if (e.checkpoint !== undefined) cps.push(e.checkpoint);
    else counts.set(e.stream, (counts.get(e.stream) ?? 0) + 1);
  }
  for (const s of (listed as readonly string[] | null) ?? []) if (!streams.has(s)) streams.set(s, []);
  const out: StreamReport[] = [];
  if (pending.length > 0) {
    // Nothing but unreadable lines: no stream to report them under.
    out.push(unreadable('(export)', pending.map((l) => `line ${l} of the export is not a readable entry`)));
  }
  for (const [s, cps] of streams) {
    const rep = await verifyStream(s, exportRecords(file, s, owners), cps, opts);
    if ((counts.get(s) ?? 0) === 0) noRecords(rep, 'the export header lists it');
    out.push(rep);
  }
  return out;
}

function unreadable(stream: string, details: string[]): StreamReport {
  return { stream, records: 0, lastSeq: 0, checkpoints: 0, latestCheckpointSeq: 0, problems: details.map((detail) => ({ seq: 0, kind: 'malformed' as const, detail })), macsChecked: false, signaturesChecked: false };
}

/** A stream that should exist has no records at all: a wiped store is a failure, never an empty success. */
function noRecords(rep: StreamReport, why: string): void {
  if (rep.records > 0 || rep.problems.some((p) => p.kind === 'truncated')) return;
  rep.problems.unshift({ seq: 1, kind: 'deleted', detail: `stream ${rep.stream} has no records, but ${why}: its records were deleted (a wiped store)` });
}
