/**
 * Where the verifier reads from: a store (every stream, storage order) or an export file.
 *
 * Export format (JSON Lines, docs/audit.md): the first line is
 * `{"format":"gatehouse-audit-export","v":1,"exported_at":…}`; then, stream by stream,
 * `{"record":{…}}` lines in storage order followed by that stream's `{"checkpoint":{…}}`
 * lines. Records carry every chain field (stream, seq, kid, prev_hash, mac, hash).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Checkpoint } from './checkpoint.js';
import type { ChainedRecord } from './record.js';
import type { AuditStore } from './store/types.js';
import { verifyStream, type StreamReport, type VerifyOptions } from './verify.js';

const PAGE = 10_000;

async function* storeRecords(store: AuditStore, stream: string): AsyncGenerator<string> {
  let after = 0;
  for (;;) {
    const rows = await store.readRaw(stream, after, PAGE);
    for (const r of rows) yield r.data;
    if (rows.length < PAGE) return;
    after = (rows[rows.length - 1] as { id: number }).id;
  }
}

export async function verifyStore(store: AuditStore, opts: VerifyOptions): Promise<StreamReport[]> {
  const out: StreamReport[] = [];
  for (const s of await store.streams()) {
    // A stream whose oldest records were archived and pruned begins after the prune's anchor.
    const pruned = await store.prunedTo(s);
    const from = pruned === null ? null : { seq: pruned.seq, hash: pruned.hash, frontier: pruned.frontier };
    out.push(await verifyStream(s, storeRecords(store, s), await store.checkpoints(s), { ...opts, from }));
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
  await write(JSON.stringify({ format: 'gatehouse-audit-export', v: 1, exported_at: new Date().toISOString() }));
  for (const s of streams ?? (await store.streams())) {
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

type ExportEntry = { readonly stream: string; readonly record: string | ChainedRecord; readonly checkpoint?: undefined } | { readonly stream: string; readonly checkpoint: Checkpoint; readonly record?: undefined };

/**
 * The entries of an export, in line order, read as a stream (nothing kept): the header is
 * checked first. A record line `{"record":…}` gives the record's text as it is (what the
 * store held), so the verifier can take its fast path over those bytes.
 */
async function* exportEntries(file: string): AsyncGenerator<ExportEntry> {
  const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let first = true;
  for await (const line of rl) {
    if (line === '') continue;
    // A line that is JSON but not an object (null, a number) is an entry of neither kind.
    const o = Object(JSON.parse(line)) as { format?: string; record?: ChainedRecord; checkpoint?: Checkpoint };
    if (first) {
      first = false;
      if (o.format !== 'gatehouse-audit-export') throw new Error(`${file} is not a gatehouse audit export`);
      continue;
    }
    if (o.record !== undefined) {
      // The line is exactly {"record":<text>} (one member, as exportStore writes it): keep <text>.
      const whole = line.startsWith('{"record":') && line.endsWith('}') && Object.keys(o).length === 1;
      yield { stream: String((o.record as { stream?: unknown } | null)?.stream), record: whole ? line.slice(10, -1) : o.record };
    } else if (o.checkpoint !== undefined) {
      yield { stream: String((o.checkpoint as { stream?: unknown } | null)?.stream), checkpoint: o.checkpoint };
    }
  }
}

/** One stream's records of an export, in line order, read as a stream. */
export async function* exportRecords(file: string, stream: string): AsyncGenerator<string | ChainedRecord> {
  for await (const e of exportEntries(file)) if (e.record !== undefined && e.stream === stream) yield e.record;
}

/**
 * Verifies an export in constant memory, whatever its size: a first pass collects the
 * streams and their checkpoints (they follow the records, and the verifier needs them
 * first), then each stream's records are read again and verified as they stream by.
 */
export async function verifyExport(file: string, opts: VerifyOptions): Promise<StreamReport[]> {
  const streams = new Map<string, Checkpoint[]>();
  for await (const e of exportEntries(file)) {
    let cps = streams.get(e.stream);
    if (cps === undefined) streams.set(e.stream, (cps = []));
    if (e.checkpoint !== undefined) cps.push(e.checkpoint);
  }
  const out: StreamReport[] = [];
  for (const [s, cps] of streams) out.push(await verifyStream(s, exportRecords(file, s), cps, opts));
  return out;
}
