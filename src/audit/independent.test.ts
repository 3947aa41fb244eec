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
import { HMAC_K1, HMAC_K2, keyring, makeSqlite, testSigner } from './test-support.js';
import { buildMixedChain } from './test-mixed-chain.js';
import { AuditWriter } from './writer.js';
import { macKey } from './chain-hash.js';
import { parseStoredV2, sealBatch } from './v2.js';
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

it('the Python verifier agrees on chain v2 and on a stream that switches from v1 to v2: intact, and every tamper named at the same seq', async (t) => {
  const ts = await makeSqlite(t);
  if (ts === undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-independent-v2-'));
  const K = keyring({ k1: HMAC_K1, k2: HMAC_K2 }, 'k1');
  const signer = testSigner();
  try {
    // A v2 stream the AuditWriter wrote (escapes, a lone surrogate, llm members), and a mixed one.
    const w = await AuditWriter.open({ store: ts.store, keyring: K, signer, stateDir: join(dir, 'state'), stream: 'gw-v2', instance: 'test', mode: 'async', flushIntervalMs: 5, batchMax: 7, checkpointRecords: 20, checkpointIntervalMs: 0, spoolLimitBytes: 1 << 24 });
    const subjects = ['alice', 'quote " and \\ backslash', 'tab\tnewline\ncontrol\u0001\u001f', 'größe ✓ 😀', 'lone \ud800 surrogate', null];
    for (let i = 1; i <= 60; i++) {
      const b = emptyBody('exchange', new Date(1_700_000_000_000 + i * 1000).toISOString());
      b.subject = subjects[i % subjects.length] as string | null;
      b.path = `/item/${i}`;
      b.status = 200;
      if (i % 5 === 0) b.llm = { completion_tokens: 3, credential: 'subject', endpoint: 'chat', model: 'm', prompt_tokens: 2, rewritten: false, streamed: true, total_tokens: 5, ttfb_us: 100, upstream_model: null, usage: 'reported' };
      void w.append(b);
      if (i % 9 === 0) await new Promise((r) => setTimeout(r, 10));
    }
    await w.close();
    const mixed = buildMixedChain('gw-mixed', 12, [5, 1, 9, 4], K, signer, [12, 18, 27, 31]);
    await ts.store.append(mixed.records, mixed.checkpoints);
    const file = join(dir, 'export.jsonl');
    await exportStore(ts.store, file);
    const pub = join(dir, 'checkpoint.pub');
    writeFileSync(pub, signer.publicKey.export({ format: 'pem', type: 'spki' }) as string);
    const key = ['--key', `k1=${HMAC_K1.toString('hex')}`, '--key', `k2=${HMAC_K2.toString('hex')}`, '--public-key', pub];
    const ours = await verifyExport(file, { keyring: K, publicKey: signer.publicKey });
    assert.deepEqual(
      ours.map((r) => [r.stream, r.problems]),
      [
        ['gw-mixed', []],
        ['gw-v2', []],
      ],
    );
    const ok = await python([file, ...key]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, /stream gw-v2: 61 records, \d+ checkpoints, MACs checked, signatures (checked|not checked \(no cryptography package\)): OK/);
    assert.match(ok.stdout, /stream gw-mixed: 31 records, 4 checkpoints, MACs checked/);
    t.diagnostic(ok.stdout.trim());

    const lines = readFileSync(file, 'utf8').split('\n');
    const parsed = lines.map((l) => (l.startsWith('{"record":') ? (JSON.parse(l) as { record: { stream: string; seq: number } }).record : null));
    const at = (stream: string, seq: number) => parsed.findIndex((r) => r?.stream === stream && r.seq === seq);
    const data = (i: number) => (lines[i] as string).slice(10, -1);
    /** Both verifiers on the export with `edit` applied: the first problem's seq (ours: of the stream named). */
    const both = async (what: string, stream: string, edit: (l: string[]) => void, keyed = true): Promise<number> => {
      const l = [...lines];
      edit(l);
      const f = join(dir, 'tampered.jsonl');
      writeFileSync(f, l.join('\n'));
      const rep = (await verifyExport(f, keyed ? { keyring: K, publicKey: signer.publicKey } : { publicKey: signer.publicKey })).find((r) => r.stream === stream);
      const theirs = await python(keyed ? [f, ...key] : [f, '--public-key', pub]);
      const m = new RegExp(`stream ${stream}: .* first problem at seq (\\d+)`).exec(theirs.stdout);
      assert.equal(theirs.code, 1, `${what}: ${theirs.stdout}`);
      assert.ok(m !== null && rep !== undefined && rep.problems.length > 0, `${what}: ${theirs.stdout} ${JSON.stringify(rep?.problems)}`);
      assert.equal(Number(m[1]), rep.problems[0]?.seq, `${what}: ${theirs.stdout} ${JSON.stringify(rep.problems)}`);
      return rep.problems[0]?.seq as number;
    };
    // A changed character in a v2 record (leaf kept), and in the last v1 record of the mixed stream.
    assert.equal(await both('v2 content', 'gw-v2', (l) => (l[at('gw-v2', 17)] = (l[at('gw-v2', 17)] as string).replace('"status":200', '"status":201'))), 17);
    assert.equal(await both('v1 content', 'gw-mixed', (l) => (l[at('gw-mixed', 12)] = (l[at('gw-mixed', 12)] as string).replace('"status":200', '"status":201'))), 12);
    // A seal removed; a record deleted inside a batch; the stream cut inside its last batch.
    const sealed = lines.findIndex((l) => l.includes('"stream":"gw-v2"') && l.includes('"seal":') && !l.includes('"seal_first":1}'));
    const sp = parseStoredV2(data(sealed)) as NonNullable<ReturnType<typeof parseStoredV2>>;
    await both('seal removed', 'gw-v2', (l) => (l[sealed] = `{"record":${data(sealed).slice(0, sp.end)},"leaf":"${sp.leaf}"}}`));
    await both('record deleted', 'gw-mixed', (l) => l.splice(at('gw-mixed', 20), 1));
    assert.equal(await both('tail cut inside a batch', 'gw-mixed', (l) => l.splice(at('gw-mixed', 30), 2)), 28);
    // A batch re-sealed with the other key of the ring: only the keyring finds it.
    const first = 13;
    await both('re-sealed with k2', 'gw-mixed', (l) => {
      const canons = [13, 14, 15, 16, 17].map((q) => {
        const d = data(at('gw-mixed', q));
        return d.slice(0, (parseStoredV2(d) as { end: number }).end) + '}';
      });
      const b = sealBatch(canons, first, mixed.records[11]?.chain as string, macKey(HMAC_K2));
      for (let q = 13; q <= 17; q++) l[at('gw-mixed', q)] = `{"record":${b.data[q - 13] as string}}`;
    });
  } finally {
    await ts.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
