/**
 * The outage spool: when the store refuses a batch, the chained batch (records and
 * checkpoints, already sealed: the chain never restarts) is appended to a local JSONL
 * file in `state.dir` and fsync'ed, then replayed in order once the store answers again.
 * While the spool holds anything every new batch goes behind it, so the store always
 * receives a stream in seq order.
 */
import { closeSync, fsyncSync, openSync, readFileSync, statSync, truncateSync, writeSync } from 'node:fs';
import { recordData } from './chain.js';
import type { ChainedRecord } from './record.js';
import type { StoredCheckpoint } from './store/types.js';

export interface SpoolBatch {
  records: ChainedRecord[];
  checkpoints: StoredCheckpoint[];
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
    // Each record as its stored JSON (recordData): parsed back at replay, it has the same
    // members in the same order, so the store receives the very text it would have stored
    // (and the verifier's fast path applies to it), not a re-serialization in another order.
    const line = `{"records":[${batch.records.map(recordData).join(',')}],"checkpoints":${JSON.stringify(batch.checkpoints)}}\n`;
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
      try {
        out.push(JSON.parse(line) as SpoolBatch);
      } catch {
        break;
      }
    }
    return out;
  }

  clear(): void {
    truncateSync(this.file, 0);
    this.bytes = 0;
  }
}
