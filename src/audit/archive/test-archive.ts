/** Test helpers for the archive (not public API): a growing stream in a store, a log that keeps its events. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../observability/logger.js';
import { genesis } from '../canonical.js';
import { Chain, v1StoreRecords } from '../chain.js';
import type { CheckpointSigner } from '../checkpoint.js';
import type { Keyring } from '../keyring.js';
import { MerkleAccumulator } from '../merkle.js';
import { emptyBody, type ChainedRecord } from '../record.js';
import type { AuditStore, StoredCheckpoint } from '../store/types.js';
import type { TestS3 } from '../../testing/s3-server.js';
import { createDirectoryTarget } from './directory-target.js';
import { createS3Target } from './s3-target.js';
import type { ArchiveTarget } from './target.js';

export interface LogEvent {
  level: 'info' | 'warn' | 'error';
  event?: string;
  [k: string]: unknown;
}

export function eventLog(): { log: Logger; events: LogEvent[] } {
  const events: LogEvent[] = [];
  const at = (level: LogEvent['level']) => (o: Record<string, unknown>) => {
    events.push({ level, ...o });
  };
  const log = { info: at('info'), warn: at('warn'), error: at('error'), debug: () => undefined } as unknown as Logger;
  return { log, events };
}

/** A stream that grows in a store: `add(n, cpAt)` seals and appends n records, with checkpoints after the listed counts. */
export function growingStream(store: AuditStore, stream: string, keys: Keyring, signer: CheckpointSigner) {
  const chain = new Chain(stream, 0, genesis(stream).toString('hex'), new MerkleAccumulator());
  const all: ChainedRecord[] = [];
  return {
    chain,
    all,
    /** Appends records up to `toSeq`, with a signed checkpoint at each seq in `cpAt`. */
    async add(toSeq: number, cpAt: readonly number[], opts: { gapTo?: number } = {}): Promise<void> {
      const records: ChainedRecord[] = [];
      const cps: StoredCheckpoint[] = [];
      for (let i = chain.seq + 1; i <= toSeq; i++) {
        const b = emptyBody('exchange', new Date(1_700_000_000_000 + i * 1000).toISOString());
        b.request_id = `req-${i}`;
        b.method = 'GET';
        b.path = `/item/${i}`;
        b.status = 200;
        b.decision = 'allowed';
        records.push(chain.seal(b, i, keys));
        if (cpAt.includes(i)) cps.push({ checkpoint: signer.sign({ stream, seq: i, head_hash: chain.prev, merkle_root: chain.merkle.rootHex(), time: new Date(1_700_000_000_000 + i * 1000).toISOString() }), frontier: chain.merkle.state() });
      }
      if (opts.gapTo !== undefined) {
        // A crash: seqs after the head up to gapTo were handed out and lost; the restart record says so.
        const head = chain.seq;
        const r = emptyBody('restart', new Date().toISOString());
        r.count = opts.gapTo - head;
        r.lost_to = opts.gapTo;
        records.push(chain.seal(r, opts.gapTo + 1, keys));
      }
      all.push(...records);
      await store.append(v1StoreRecords(records), cps);
    },
    /** Signs a checkpoint over the current head and stores it. */
    async checkpoint(time = new Date().toISOString()): Promise<void> {
      await store.append([], [{ checkpoint: signer.sign({ stream, seq: chain.seq, head_hash: chain.prev, merkle_root: chain.merkle.rootHex(), time }), frontier: chain.merkle.state() }]);
    },
  };
}

export function tempDirTarget(): { target: ArchiveTarget; dir: string; cleanup(): void } {
  const root = mkdtempSync(join(tmpdir(), 'gatehouse-archive-'));
  const dir = join(root, 'archive');
  return { target: createDirectoryTarget(dir), dir, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** An S3 target on a test server (src/testing/s3-server.ts). */
export function s3TargetFor(s3: TestS3, prefix = 'gw/'): ArchiveTarget {
  return createS3Target({ bucket: s3.bucket, prefix, region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, requestTimeoutMs: 5000 });
}
