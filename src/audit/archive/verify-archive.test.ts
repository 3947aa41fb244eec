/**
 * `audit verify --archive` as an auditor who does not trust whoever holds the bucket: a
 * missing, altered or reordered segment is named (segment index and kind), and the record
 * problems it causes are named at their seqs, in the segment they fall in — for a stream in
 * chain format v1, in v2 (segments end at batch ends, the manifests carry seals as the
 * chain values), and one that switched from v1 to v2 inside a segment.
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
import { buildMixedChain, type MixedChain } from '../test-mixed-chain.js';
import { formatArchiveReport, verifyArchive, type ArchiveStreamReport } from './verify-archive.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-va';
const SIGNER = testSigner();

type Format = 'v1' | 'v2' | 'v1→v2';

/**
 * 50 records with checkpoints at 10, 20, 30, 40, 50: v1; v2 in batches ending at the
 * checkpoints and between them; or v1 through seq 15 then v2 (segment 1 holds both).
 */
function chainOf(format: Format): MixedChain {
  const cps = [10, 20, 30, 40, 50];
  if (format === 'v1') return buildMixedChain(S, 50, [], K, SIGNER, cps);
  if (format === 'v2') return buildMixedChain(S, 0, [4, 6, 10, 3, 7, 10, 10], K, SIGNER, cps);
  return buildMixedChain(S, 15, [5, 10, 2, 8, 10], K, SIGNER, cps);
}

/** A stream of 50 records archived as 5 segments of 10 into a directory. */
async function archived(format: Format): Promise<{ ts: TestStore; chain: MixedChain; target: ArchiveTarget; dir: string; file(i: number, kind: 'manifest' | 'data'): string; cleanup(): Promise<void> }> {
  const ts = (await makeSqlite({} as never)) as TestStore;
  const d = tempDirTarget();
  const chain = chainOf(format);
  await ts.store.append(chain.records, chain.checkpoints);
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
  return { ts, chain, target: d.target, dir: d.dir, file, cleanup: async () => (await ts.cleanup(), d.cleanup()) };
}

const verify = async (target: ArchiveTarget, extra: Parameters<typeof verifyArchive>[1] = {}): Promise<ArchiveStreamReport> => {
  const reps = await verifyArchive(target, { keyring: K, publicKey: SIGNER.publicKey, ...extra });
  assert.equal(reps.length, 1);
  return reps[0] as ArchiveStreamReport;
};

function writable(path: string): void {
  chmodSync(path, 0o600);
}

for (const format of ['v1', 'v2', 'v1→v2'] as const) {
describe(`verify --archive: the segment tamper matrix (${format})`, () => {
  it('an intact archive verifies (and says so in its report)', async () => {
    const x = await archived(format);
    try {
      const r = await verify(x.target);
      assert.deepEqual([r.problems, r.records.problems, r.segments, r.records.records], [[], [], 5, 50]);
      assert.match(formatArchiveReport(r), /5 segment\(s\), 50 records, last seq 50.*: OK$/);
    } finally {
      await x.cleanup();
    }
  });

  it('a missing segment (manifest and data deleted) is named, and its records as deleted', async () => {
    const x = await archived(format);
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
    const x = await archived(format);
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
    const x = await archived(format);
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
    const x = await archived(format);
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
    const x = await archived(format);
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
    const x = await archived(format);
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
    const x = await archived(format);
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
    const x = await archived(format);
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
    const x = await archived(format);
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

  it('the manifests chain the segments by their chain values: a v1 record\'s hash, a v2 batch\'s seal', async () => {
    const x = await archived(format);
    try {
      const value = (seq: number) => (x.chain.records[seq - 1] as { chain: string | null }).chain;
      for (let i = 0; i < 5; i++) {
        const m = parseManifest(readFileSync(x.file(i, 'manifest')));
        assert.ok(typeof m !== 'string');
        assert.equal(m.end.hash, value(m.last_seq), `segment ${i} ends at the chain value of seq ${m.last_seq}`);
        assert.equal(m.prev?.head_hash ?? null, i === 0 ? null : value(m.first_seq - 1));
        assert.equal(m.checkpoints[m.checkpoints.length - 1]?.head_hash, m.end.hash);
      }
      assert.deepEqual((await x.ts.store.archiveAnchors(S)).map((a) => [a.seq, a.hash]), [10, 20, 30, 40, 50].map((q) => [q, value(q)]));
    } finally {
      await x.cleanup();
    }
  });
});
}

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
