/**
 * `audit verify --archive` as an auditor who does not trust whoever holds the bucket: a
 * missing, altered or reordered segment is named (segment index and kind), and the record
 * problems it causes are named at their seqs, in the segment they fall in.
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { HMAC_K1, keyring, makeSqlite, testSigner, type TestStore } from '../test-support.js';
import { startTestS3 } from '../../testing/s3-server.js';
import { Archiver } from './archiver.js';
import { manifestKey, parseManifest } from './format.js';
import type { ArchiveTarget } from './target.js';
import { growingStream, s3TargetFor, tempDirTarget } from './test-archive.js';
import { formatArchiveReport, verifyArchive, type ArchiveStreamReport } from './verify-archive.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-va';
const SIGNER = testSigner();

/** A stream of 50 records archived as 5 segments of 10 into a directory. */
async function archived(): Promise<{ ts: TestStore; target: ArchiveTarget; dir: string; file(i: number, kind: 'manifest' | 'data'): string; cleanup(): Promise<void> }> {
  const ts = (await makeSqlite({} as never)) as TestStore;
  const d = tempDirTarget();
  const s = growingStream(ts.store, S, K, SIGNER);
  await s.add(50, [10, 20, 30, 40, 50]);
  const a = await Archiver.open({ store: ts.store, target: d.target, stream: S, keyring: K, signer: SIGNER, segmentRecords: 10, intervalMs: 60_000, keepLocalMs: null, retentionMs: 0, objectLock: 'if_supported', retryMaxMs: 100 });
  assert.equal((await a.runNow()).segments, 5);
  await a.close();
  const file = (i: number, kind: 'manifest' | 'data') => {
    const mk = join(d.dir, ...manifestKey('', S, i).split('/'));
    if (kind === 'manifest') return mk;
    const m = parseManifest(readFileSync(mk));
    assert.ok(typeof m !== 'string');
    return join(d.dir, ...m.data.key.split('/'));
  };
  return { ts, target: d.target, dir: d.dir, file, cleanup: async () => (await ts.cleanup(), d.cleanup()) };
}

const verify = async (target: ArchiveTarget, extra: Parameters<typeof verifyArchive>[1] = {}): Promise<ArchiveStreamReport> => {
  const reps = await verifyArchive(target, { keyring: K, publicKey: SIGNER.publicKey, ...extra });
  assert.equal(reps.length, 1);
  return reps[0] as ArchiveStreamReport;
};

function writable(path: string): void {
  chmodSync(path, 0o600);
}

describe('verify --archive: the segment tamper matrix', () => {
  it('an intact archive verifies (and says so in its report)', async () => {
    const x = await archived();
    try {
      const r = await verify(x.target);
      assert.deepEqual([r.problems, r.records.problems, r.segments, r.records.records], [[], [], 5, 50]);
      assert.match(formatArchiveReport(r), /5 segment\(s\), 50 records, last seq 50.*: OK$/);
    } finally {
      await x.cleanup();
    }
  });

  it('a missing segment (manifest and data deleted) is named, and its records as deleted', async () => {
    const x = await archived();
    try {
      rmSync(x.file(2, 'data'));
      rmSync(x.file(2, 'manifest'));
      const r = await verify(x.target);
      assert.deepEqual(r.problems.map((p) => [p.segment, p.kind]), [[2, 'segment_missing']]);
      assert.equal(r.records.problems[0]?.kind, 'deleted');
      assert.equal(r.records.problems[0]?.seq, 21);
      assert.match(formatArchiveReport(r), /segment 2: segment_missing: segment 2 is missing/);
    } finally {
      await x.cleanup();
    }
  });

  it('a missing data object is named (the manifest is there)', async () => {
    const x = await archived();
    try {
      rmSync(x.file(1, 'data'));
      const r = await verify(x.target);
      assert.deepEqual(r.problems.map((p) => [p.segment, p.kind]), [[1, 'segment_missing']]);
      assert.match(r.problems[0]?.detail ?? '', /data object .* is missing/);
    } finally {
      await x.cleanup();
    }
  });

  it('an altered data object (a record changed inside, recompressed) is named, with the record that changed', async () => {
    const x = await archived();
    try {
      const f = x.file(3, 'data');
      const { gunzipSync } = await import('node:zlib');
      const text = gunzipSync(readFileSync(f)).toString('utf8').replace('/item/34', '/item/XX');
      writable(f);
      writeFileSync(f, gzipSync(text));
      const r = await verify(x.target);
      assert.deepEqual(r.problems.map((p) => [p.segment, p.kind]), [[3, 'segment_altered']]);
      assert.equal(r.records.problems[0]?.seq, 34);
      assert.equal(r.records.problems[0]?.kind, 'modified');
      assert.match(formatArchiveReport(r), /seq 34 \(segment 3\): modified/);
    } finally {
      await x.cleanup();
    }
  });

  it('a data object that is not gzip any more is named altered', async () => {
    const x = await archived();
    try {
      const f = x.file(0, 'data');
      writable(f);
      writeFileSync(f, 'garbage');
      const r = await verify(x.target);
      assert.ok(r.problems.some((p) => p.segment === 0 && p.kind === 'segment_altered' && /cannot be decoded/.test(p.detail)));
      assert.ok(r.records.problems.some((p) => p.kind === 'deleted' && p.seq === 1));
    } finally {
      await x.cleanup();
    }
  });

  it('an altered manifest (a checkpoint dropped, re-serialized) fails its signature and the next segment\'s link', async () => {
    const x = await archived();
    try {
      const f = x.file(1, 'manifest');
      const m = JSON.parse(readFileSync(f, 'utf8')) as { checkpoints: unknown[] };
      m.checkpoints = m.checkpoints.slice(0, 0);
      writable(f);
      writeFileSync(f, JSON.stringify(m));
      const r = await verify(x.target);
      assert.ok(r.problems.some((p) => p.segment === 1 && p.kind === 'segment_altered'), JSON.stringify(r.problems));
    } finally {
      await x.cleanup();
    }
  });

  it('a manifest re-signed by someone else (another key) is named altered', async () => {
    const x = await archived();
    try {
      const other = testSigner();
      const { signManifest } = await import('./format.js');
      const f = x.file(4, 'manifest');
      const m = parseManifest(readFileSync(f));
      assert.ok(typeof m !== 'string');
      const { key_id: _k, signature: _s, format: _f, v: _v, ...body } = m;
      writable(f);
      writeFileSync(f, signManifest({ ...body, records: body.records }, other).bytes);
      const r = await verify(x.target);
      assert.ok(r.problems.some((p) => p.segment === 4 && p.kind === 'segment_altered' && /signature/.test(p.detail)), JSON.stringify(r.problems));
    } finally {
      await x.cleanup();
    }
  });

  it('reordered segments (two manifests swapped) are named reordered, and the records as reordered', async () => {
    const x = await archived();
    try {
      const a = x.file(1, 'manifest');
      const b = x.file(2, 'manifest');
      renameSync(a, `${a}.tmp`);
      renameSync(b, a);
      renameSync(`${a}.tmp`, b);
      const r = await verify(x.target);
      assert.deepEqual(
        r.problems.filter((p) => p.kind === 'segment_reordered').map((p) => p.segment),
        [1, 2],
      );
      assert.ok(r.records.problems.some((p) => p.kind === 'reordered'), JSON.stringify(r.records.problems));
    } finally {
      await x.cleanup();
    }
  });

  it('the newest segment removed: the archive alone cannot tell, the local store\'s anchors name it', async () => {
    const x = await archived();
    try {
      rmSync(x.file(4, 'data'));
      rmSync(x.file(4, 'manifest'));
      const alone = await verify(x.target);
      assert.deepEqual([alone.problems, alone.records.problems], [[], []], 'a consistent prefix of the archive');
      const r = await verify(x.target, { anchors: (s) => x.ts.store.archiveAnchors(s) });
      assert.deepEqual(r.problems.map((p) => [p.segment, p.kind]), [[4, 'segment_missing']]);
    } finally {
      await x.cleanup();
    }
  });

  it('a manifest replaced after it was archived differs from what the local store recorded', async () => {
    const x = await archived();
    try {
      const f = x.file(4, 'manifest');
      const m = parseManifest(readFileSync(f));
      assert.ok(typeof m !== 'string');
      const { signManifest } = await import('./format.js');
      const { key_id: _k, signature: _s, format: _f, v: _v, ...body } = m;
      writable(f);
      // Signed with the right key (someone holding it), another creation time.
      writeFileSync(f, signManifest({ ...body, created: '2031-01-01T00:00:00.000Z' }, SIGNER).bytes);
      const r = await verify(x.target, { anchors: (s) => x.ts.store.archiveAnchors(s) });
      assert.ok(r.problems.some((p) => p.segment === 4 && p.kind === 'segment_altered' && /recorded as archived/.test(p.detail)), JSON.stringify(r.problems));
    } finally {
      await x.cleanup();
    }
  });
});

describe('verify --archive on S3', () => {
  it('a data object overwritten in the bucket (no Object Lock) is named altered', async () => {
    const ts = (await makeSqlite({} as never)) as TestStore;
    const s3 = await startTestS3();
    const target = s3TargetFor(s3);
    try {
      const s = growingStream(ts.store, S, K, SIGNER);
      await s.add(20, [10, 20]);
      const a = await Archiver.open({ store: ts.store, target, stream: S, keyring: K, signer: SIGNER, segmentRecords: 10, intervalMs: 60_000, keepLocalMs: null, retentionMs: 0, objectLock: 'if_supported', retryMaxMs: 100 });
      assert.equal((await a.runNow()).segments, 2);
      await a.close();
      const m = parseManifest((await target.get(manifestKey(target.prefix, S, 0))) as Buffer);
      assert.ok(typeof m !== 'string');
      // Someone with write access to the bucket replaces the object (s3rver directly).
      const put = await fetch(`${s3.raw}/${s3.bucket}/${m.data.key}`, { method: 'PUT', body: gzipSync('{"x":1}\n') });
      assert.equal(put.status, 200);
      const r = (await verifyArchive(target, { keyring: K, publicKey: SIGNER.publicKey }))[0] as ArchiveStreamReport;
      assert.deepEqual(r.problems.map((p) => [p.segment, p.kind]), [
        [0, 'segment_altered'],
        [0, 'segment_altered'],
      ]);
      assert.ok(r.records.problems.length > 0);
    } finally {
      await target.close();
      await s3.close();
      await ts.cleanup();
    }
  });
});
