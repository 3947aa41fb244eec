/**
 * Proofs from an archive (`audit prove --archive`): the archive's segments in index order,
 * then the store's newer records (those the archive holds too, before a prune, are not
 * counted twice), checkpoints from the manifests and the store; a missing, altered or
 * misplaced segment stops the proof with the segment named instead of giving a proof over
 * another tree. On a stream in format v1 and one that switched to v2 inside a segment.
 */
import assert from 'node:assert/strict';
import { readFileSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { proveConsistency, proveInclusion, verifyProof } from '../proof.js';
import { buildMixedChain, type MixedChain } from '../test-mixed-chain.js';
import { HMAC_K1, keyring, makeSqlite, testSigner, type TestStore } from '../test-support.js';
import { Archiver } from './archiver.js';
import { manifestKey, parseManifest } from './format.js';
import { archiveProofSource } from './proof-source.js';
import type { ArchiveTarget } from './target.js';
import { tempDirTarget } from './test-archive.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-ps';
const SIGNER = testSigner();

/** 40 records, checkpoints at 10, 20, 30, 40, archived as 4 segments (nothing pruned). */
async function archived(format: 'v1' | 'v1→v2'): Promise<{ ts: TestStore; chain: MixedChain; target: ArchiveTarget; file(i: number, kind: 'manifest' | 'data'): string; cleanup(): Promise<void> }> {
  const ts = (await makeSqlite({} as never)) as TestStore;
  const d = tempDirTarget();
  const cps = [10, 20, 30, 40];
  const chain = format === 'v1' ? buildMixedChain(S, 40, [], K, SIGNER, cps) : buildMixedChain(S, 14, [6, 3, 7, 10], K, SIGNER, cps);
  await ts.store.append(chain.records, chain.checkpoints);
  const a = await Archiver.open({ store: ts.store, target: d.target, stream: S, keyring: K, signer: SIGNER, segmentRecords: 10, intervalMs: 60_000, keepLocalMs: null, retentionMs: 0, objectLock: 'if_supported', retryMaxMs: 100 });
  assert.equal((await a.runNow()).segments, 4);
  await a.close();
  const file = (i: number, kind: 'manifest' | 'data') => {
    const mk = join(d.dir, ...manifestKey('', S, i).split('/'));
    if (kind === 'manifest') return mk;
    const m = parseManifest(readFileSync(mk));
    assert.ok(typeof m !== 'string');
    return join(d.dir, ...m.data.key.split('/'));
  };
  return { ts, chain, target: d.target, file, cleanup: async () => (await ts.cleanup(), d.cleanup()) };
}

for (const format of ['v1', 'v1→v2'] as const) {
  describe(`proofs from an archive (${format})`, () => {
    it('the archive alone and the archive followed by an unpruned store give the same, valid proofs', async () => {
      const x = await archived(format);
      try {
        // Records after the archive: 41..50, checkpoint at 50, in the store only.
        const more = buildMixedChain(S, format === 'v1' ? 50 : 14, format === 'v1' ? [] : [6, 3, 7, 10, 10, 4, 6], K, SIGNER, [10, 20, 30, 40, 50]);
        await x.ts.store.append(
          more.records.filter((r) => r.seq > 40),
          more.checkpoints.filter((c) => c.checkpoint.seq > 40),
        );
        const alone = archiveProofSource(x.target, null);
        const both = archiveProofSource(x.target, x.ts.store);
        for (const seq of [1, 14, 15, 20, 33, 40]) {
          const a = await proveInclusion(alone, S, seq, 40);
          const b = await proveInclusion(both, S, seq, 40);
          assert.deepEqual(a, b, `record ${seq}`);
          assert.deepEqual(verifyProof(a, SIGNER.publicKey), []);
        }
        // Beyond the archive: the store's records and checkpoint follow (each record once).
        const p = await proveInclusion(both, S, 45, null);
        assert.deepEqual([verifyProof(p, SIGNER.publicKey), p.checkpoint.seq, p.tree_size], [[], 50, 50]);
        const c = await proveConsistency(both, S, 10, 50);
        assert.deepEqual(verifyProof(c, SIGNER.publicKey), []);
        await assert.rejects(proveInclusion(alone, S, 45, null), /the checkpoint at seq 40 does not cover seq 45/);
      } finally {
        await x.cleanup();
      }
    });

    it('a missing, altered or misplaced segment stops the proof, naming the segment', async () => {
      const x = await archived(format);
      try {
        const prove = () => proveInclusion(archiveProofSource(x.target, null), S, 5, null);
        const m2 = x.file(2, 'manifest');
        renameSync(m2, `${m2}.away`);
        await assert.rejects(prove, /segment 2 has no manifest; verify it with gatehouse audit verify --archive/);
        renameSync(`${m2}.away`, m2);
        // Segments 1 and 2 swapped.
        const m1 = x.file(1, 'manifest');
        renameSync(m1, `${m1}.tmp`);
        renameSync(m2, m1);
        renameSync(`${m1}.tmp`, m2);
        await assert.rejects(prove, /segment 1 does not follow segment 0/);
        renameSync(m1, `${m1}.tmp`);
        renameSync(m2, m1);
        renameSync(`${m1}.tmp`, m2);
        assert.deepEqual(verifyProof(await prove(), SIGNER.publicKey), []);
        // A record changed inside segment 3's data object.
        const d3 = x.file(3, 'data');
        const { gunzipSync } = await import('node:zlib');
        chmodSync(d3, 0o600);
        writeFileSync(d3, gzipSync(gunzipSync(readFileSync(d3)).toString('utf8').replace('/item/34', '/item/XX')));
        await assert.rejects(prove, /the data object of segment 3 is not the one its manifest names/);
        rmSync(d3);
        await assert.rejects(prove, /the data object of segment 3 is missing/);
      } finally {
        await x.cleanup();
      }
    });
  });
}
