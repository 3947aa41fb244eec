/**
 * The outage spool: when the store refuses a batch, the chained batch (records and
 * checkpoints, already sealed: the chain never restarts) is appended to a local JSONL
 * file in `state.dir` and fsync'ed, then replayed in order once the store answers again.
 * While the spool holds anything every new batch goes behind it, so the store always
 * receives a stream in seq order.
 */
import { closeSync, fsyncSync, openSync, readFileSync, statSync, truncateSync, writeSync } from 'node:fs';
import type { ChainedRecord } from './record.js';
import type { StoreRecord, StoredCheckpoint } from './store/types.js';
import { isStoredV2 } from './v2.js';

export interface SpoolBatch {
  records: StoreRecord[];
  checkpoints: StoredCheckpoint[];
}

/** The store record of a stored form: the columns read out of it, `data` kept as it is. */
export function storeRecordOf(data: string): StoreRecord {
  const o = JSON.parse(data) as ChainedRecord & { leaf?: string };
  return { stream: o.stream, seq: o.seq, time: o.time, subject: o.subject, decision: o.decision, hash: isStoredV2(data) ? (o.leaf as string) : o.hash, data };
}

export class Spool {
  readonly file: string;
  bytes: number;

  constructor(file: string) {
    this.file = file;
    try {
      this.bytes = statSync(file).size;
    } catch {
      this.bytes = 0;
    }
  }

  get empty(): boolean {
    return this.bytes === 0;
  }

  append(batch: SpoolBatch): void {
    // Each record's stored form as a JSON string: the store receives at replay the very
    // text it would have stored (the text that is hashed), not a re-serialization.
    const line = `{"records":${JSON.stringify(batch.records.map((r) => r.data))},"checkpoints":${JSON.stringify(batch.checkpoints)}}\n`;
    const fd = openSync(this.file, 'a', 0o600);
    try {
      writeSync(fd, line);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.bytes += Buffer.byteLength(line);
  }

  /** Every spooled batch, in order. A torn last line (crash mid-write) is ignored: it was never acknowledged. */
  read(): SpoolBatch[] {
    if (this.bytes === 0) return [];
    const out: SpoolBatch[] = [];
    for (const line of readFileSync(this.file, 'utf8').split('\n')) {
      if (line === '') continue;
      let b: { records: Array<string | ChainedRecord>; checkpoints: StoredCheckpoint[] };
      try {
        b = JSON.parse(line) as typeof b;
      } catch {
        break;
      }
      // A spool an older gatehouse wrote holds v1 records as objects, in their stored member order.
      out.push({ records: b.records.map((r) => storeRecordOf(typeof r === 'string' ? r : JSON.stringify(r))), checkpoints: b.checkpoints });
    }
    return out;
  }

  clear(): void {
    truncateSync(this.file, 0);
    this.bytes = 0;
  }
}
