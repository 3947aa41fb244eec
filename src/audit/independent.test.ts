/**
 * An independent verifier, written in Python from docs/audit.md alone
 * (docs/audit-verify.py), agrees with gatehouse's: an export the gateway's code wrote —
 * with strings that need escaping (quotes, control characters, non-ASCII, a lone
 * surrogate), an `llm` member, a declared crash gap and signed checkpoints — verifies
 * there (hashes, links, MACs, Merkle roots, signatures when the `cryptography` package is
 * installed), and one changed character of a record is found at the same seq.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { genesis } from './canonical.js';
import { Chain, v1StoreRecords } from './chain.js';
import { MerkleAccumulator } from './merkle.js';
import { emptyBody, type ChainedRecord } from './record.js';
import { exportStore, verifyExport } from './sources.js';
import { HMAC_K1, keyring, makeSqlite, testSigner } from './test-support.js';
import type { StoredCheckpoint } from './store/types.js';

const SCRIPT = fileURLToPath(new URL('../../docs/audit-verify.py', import.meta.url));
const S = 'gw-independent';

function python(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile('python3', [SCRIPT, ...args], (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout: stdout + stderr }));
  });
}

it('the Python verifier written from docs/audit.md agrees with gatehouse on an export, intact and tampered', async (t) => {
  const ts = await makeSqlite(t);
  if (ts === undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-independent-'));
  const K = keyring({ k1: HMAC_K1 }, 'k1');
  const signer = testSigner();
  try {
    const chain = new Chain(S, 0, genesis(S).toString('hex'), new MerkleAccumulator());
    const records: ChainedRecord[] = [];
    const checkpoints: StoredCheckpoint[] = [];
    const cp = () => checkpoints.push({ checkpoint: signer.sign({ stream: S, seq: chain.seq, head_hash: chain.prev, merkle_root: chain.merkle.rootHex(), time: new Date(1_700_000_000_000 + chain.seq).toISOString() }), frontier: chain.merkle.state() });
    const subjects = ['alice', 'quote " and \\ backslash', 'tab\tnewline\ncontrol\u0001\u001f', 'größe ✓ 😀', 'lone \ud800 surrogate', null];
    for (let i = 1; i <= 30; i++) {
      const b = emptyBody('exchange', new Date(1_700_000_000_000 + i * 1000).toISOString());
      b.subject = subjects[i % subjects.length] as string | null;
      b.path = `/item/${i}`;
      b.status = 200;
      b.decision = 'allowed';
      b.latency_us = i * 7;
      b.policies = i % 4 === 0 ? ['p1', 'p"2'] : null;
      if (i % 5 === 0) b.llm = { completion_tokens: 3, credential: 'subject', endpoint: 'chat', model: 'm', prompt_tokens: 2, rewritten: false, streamed: true, total_tokens: 5, ttfb_us: 100, upstream_model: null, usage: 'reported' };
      records.push(chain.seal(b, i, K));
      if (i % 10 === 0) cp();
    }
    // A crash: seqs 31..35 declared lost by the restart record at 36, then more records.
    const restart = emptyBody('restart', new Date(1_700_000_100_000).toISOString());
    restart.count = 5;
    restart.lost_to = 35;
    records.push(chain.seal(restart, 36, K));
    for (let i = 37; i <= 40; i++) records.push(chain.seal(emptyBody('exchange', new Date(1_700_000_200_000 + i).toISOString()), i, K));
    cp();
    await ts.store.append(v1StoreRecords(records), checkpoints);
    const file = join(dir, 'export.jsonl');
    await exportStore(ts.store, file);
    const pub = join(dir, 'checkpoint.pub');
    writeFileSync(pub, signer.publicKey.export({ format: 'pem', type: 'spki' }) as string);
    const key = ['--key', `k1=${HMAC_K1.toString('hex')}`, '--public-key', pub];

    // Same verdict on both sides: the declared gap at 31, nothing else.
    const ours = await verifyExport(file, { keyring: K, publicKey: signer.publicKey });
    assert.deepEqual(
      ours[0]?.problems.map((p) => [p.seq, p.kind]),
      [[31, 'gap']],
    );
    const theirs = await python([file, ...key]);
    assert.match(theirs.stdout, /stream gw-independent: 35 records, 4 checkpoints: first problem at seq 31: gap declared by a restart record/, theirs.stdout);

    // Without the gap (records 1..30 and their checkpoints only): OK on both sides.
    const clean = join(dir, 'clean.jsonl');
    const lines = readFileSync(file, 'utf8').split('\n');
    writeFileSync(clean, lines.filter((l) => !/"seq":(3[1-9]|40)[,}]/.test(l)).join('\n'));
    assert.deepEqual((await verifyExport(clean, { keyring: K, publicKey: signer.publicKey }))[0]?.problems, []);
    const ok = await python([clean, ...key]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, /30 records, 3 checkpoints, MACs checked, signatures (checked|not checked \(no cryptography package\)): OK/);
    t.diagnostic(ok.stdout.trim());

    // One character of record 17 changed: both name seq 17.
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, readFileSync(clean, 'utf8').replace('"path":"/item/17"', '"path":"/item/71"'));
    assert.equal((await verifyExport(bad, { keyring: K, publicKey: signer.publicKey }))[0]?.problems[0]?.seq, 17);
    const found = await python([bad, ...key]);
    assert.equal(found.code, 1);
    assert.match(found.stdout, /first problem at seq 17: content does not match its hash/);
  } finally {
    await ts.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
