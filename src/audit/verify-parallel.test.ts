/**
 * The parallel verifier (verify-parallel.ts) against the sequential one, on SQLite,
 * PostgreSQL and export files: an intact v2 stream is verified in parallel (no fallback)
 * with exactly the sequential report, with and without the keyring, with batches cut
 * across ranges and another stream's rows interleaved; and for every alteration of the
 * tamper matrix the report is the sequential verifier's, word for word.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { canonical } from './canonical.js';
import type { PostgresConfig } from '../config/schema.js';
import { recordData } from './chain.js';
import type { AuditBody, ChainFields } from './record.js';
import { exportStore, verifyExport, verifyStore } from './sources.js';
import { AuditWriter } from './writer.js';
import { buildChain, buildChainV2, chainBody, HMAC_K1, HMAC_K2, keyring, makePostgres, makeSqlite, testSigner, v1End, type BuiltV2, type MakeStore, type RawRow, type TestStore } from './test-support.js';
import { POSTGRES_URL } from '../testing/services.js';
import { LeafHasher, parseStoredV2, sealBatch, storedV2 } from './v2.js';
import { verifyExportParallel, verifyStoreParallel, type ParallelOptions, type StoreSource } from './verify-parallel.js';
import type { StreamReport, VerifyOptions } from './verify.js';
import { macKey } from './chain-hash.js';

const S = 'gw-par';
const ring = keyring({ k1: HMAC_K1, k2: HMAC_K2 }, 'k1');
const signer = testSigner();
const N = 1500;
const CPS = [600, 1100, 1412];
// Batches of 250, 1, 33 and 600 records (some longer than a range), cut at the checkpoints.
const built = buildChainV2(S, N, ring, signer, CPS, { batch: [250, 1, 33, 600] });
const other = buildChainV2('gw-other', 300, ring, signer, [300], { batch: [7] });
const hasher = new LeafHasher();
const KEYED: VerifyOptions = { keyring: ring, publicKey: signer.publicKey };
const THIRD: VerifyOptions = { publicKey: signer.publicKey };

/** Storage order: the stream's rows with the other stream's interleaved every 5 rows. */
function interleaved(rows: readonly RawRow[]): RawRow[] {
  const out: RawRow[] = [];
  let j = 0;
  for (const [i, r] of rows.entries()) {
    out.push(r);
    if (i % 5 === 4 && j < other.rows.length) out.push(other.rows[j++] as RawRow);
  }
  out.push(...other.rows.slice(j));
  return out;
}

function source(ts: TestStore): StoreSource {
  if (ts.file !== undefined) return { kind: 'sqlite', file: ts.file };
  const config = { url: POSTGRES_URL, schema: ts.schema as string, max_connections: 1, connect_timeout: 5000 } as PostgresConfig;
  return { kind: 'postgres', config, configDir: tmpdir() };
}

/** Small ranges, two workers: many ranges and batches cut across them. */
function popts(fallbacks: string[]): ParallelOptions {
  return { workers: 2, rangeRecords: 97, onSequential: (s, why) => fallbacks.push(`${s ?? '(export)'}: ${why}`) };
}

interface Compared {
  readonly sequential: StreamReport[];
  readonly fallbacks: string[];
}

/** The store and its export, keyed and third-party: parallel reports must be the sequential ones. */
async function compare(ts: TestStore, dir: string): Promise<Compared> {
  const fallbacks: string[] = [];
  const sequential: StreamReport[] = [];
  const file = join(dir, `export-${Math.random().toString(36).slice(2)}.jsonl`);
  await exportStore(ts.store, file);
  for (const o of [KEYED, THIRD]) {
    const seq = await verifyStore(ts.store, o);
    assert.deepEqual(await verifyStoreParallel(ts.store, source(ts), o, {}, popts(fallbacks)), seq, `store, keyring: ${o.keyring !== undefined}`);
    const eseq = await verifyExport(file, o);
    assert.deepEqual(await verifyExportParallel(file, o, popts(fallbacks)), eseq, `export, keyring: ${o.keyring !== undefined}`);
    sequential.push(...seq, ...eseq);
  }
  return { sequential, fallbacks };
}

/** The stored form of a record with its body edited and its leaf recomputed (seal members kept). */
function rewritten(data: string, edit: (r: Record<string, unknown>) => void): string {
  const p = parseStoredV2(data);
  assert.ok(p !== null);
  const o = JSON.parse(data) as Record<string, unknown>;
  edit(o);
  const canon = canonical(o as unknown as AuditBody & ChainFields);
  return storedV2(canon, hasher.leaf(canon), p.seal === null ? null : { first: p.sealFirst, seal: p.seal });
}

const batchAt = (seq: number) => built.batches.find((b) => b.first <= seq && seq <= b.last) as BuiltV2['batches'][number];
const dataAt = (seq: number) => (built.rows[seq - 1] as RawRow).data;

type Tamper = (ts: TestStore) => Promise<void>;

const TAMPERS: Array<[string, Tamper]> = [
  ['content changed, leaf kept', (ts) => ts.tamper.setData(S, 700, dataAt(700).replace('"status":200', '"status":201'))],
  ['content and leaf rewritten', (ts) => ts.tamper.setData(S, 320, rewritten(dataAt(320), (o) => (o.path = '/forged')))],
  ['content and leaf rewritten after the last checkpoint', (ts) => ts.tamper.setData(S, 1450, rewritten(dataAt(1450), (o) => (o.path = '/forged')))],
  ['a seal changed', (ts) => ts.tamper.setData(S, 284, dataAt(284).replace(/"seal":"(.)/, (_m, c: string) => `"seal":"${c === '0' ? '1' : '0'}`))],
  [
    'a seal removed',
    (ts) => {
      const p = parseStoredV2(dataAt(250)) as NonNullable<ReturnType<typeof parseStoredV2>>;
      return ts.tamper.setData(S, 250, `${dataAt(250).slice(0, p.end)},"leaf":"${p.leaf}"}`);
    },
  ],
  ['seal_first changed', (ts) => ts.tamper.setData(S, 284, dataAt(284).replace('"seal_first":252}', '"seal_first":253}'))],
  ['a record deleted inside a batch', (ts) => ts.tamper.deleteSeqs(S, 400, 400)],
  ['a sealing record deleted', (ts) => ts.tamper.deleteSeqs(S, batchAt(900).last, batchAt(900).last)],
  ['a whole batch deleted', (ts) => ts.tamper.deleteSeqs(S, batchAt(251).first, batchAt(251).last)],
  ['the tail cut inside a batch', (ts) => ts.tamper.deleteSeqs(S, N - 2, N)],
  ['the tail cut past a checkpoint', (ts) => ts.tamper.deleteSeqs(S, 1300, N)],
  ['a record duplicated at the end', (ts) => ts.tamper.insertRows([built.rows[99] as RawRow])],
  [
    'a batch re-sealed with another key of the ring',
    async (ts) => {
      const b = batchAt(252);
      const canons = built.rows.slice(b.first - 1, b.last).map((r) => canonical(JSON.parse(r.data) as AuditBody & ChainFields));
      const s = sealBatch(canons, b.first, batchAt(b.first - 1).seal, macKey(HMAC_K2));
      for (let q = b.first; q <= b.last; q++) await ts.tamper.setData(S, q, s.data[q - b.first] as string);
    },
  ],
  ['a checkpoint signature broken', (ts) => ts.tamper.setCheckpointData(S, 1100, JSON.stringify({ ...built.checkpoints[1]?.checkpoint, signature: 'AAAA' }))],
];

function suite(name: string, make: MakeStore): void {
  describe(`parallel verification: ${name}`, () => {
    const withStore = (title: string, fn: (ts: TestStore, dir: string, t: TestContext) => Promise<void>) =>
      it(title, async (t) => {
        const ts = await make(t);
        if (ts === undefined) return;
        const dir = mkdtempSync(join(tmpdir(), 'gatehouse-par-'));
        try {
          await ts.tamper.insertRows(interleaved(built.rows));
          await ts.store.append([], [...built.checkpoints, ...other.checkpoints]);
          await fn(ts, dir, t);
        } finally {
          await ts.cleanup();
          rmSync(dir, { recursive: true, force: true });
        }
      });

    withStore('an intact v2 stream is verified in parallel, with exactly the sequential report', async (ts, dir) => {
      const { sequential, fallbacks } = await compare(ts, dir);
      assert.deepEqual(fallbacks, []);
      assert.equal(sequential.length, 8);
      for (const r of sequential) assert.deepEqual(r.problems, []);
      assert.equal(sequential.find((r) => r.stream === S)?.records, N);
    });

    for (const [what, tamper] of TAMPERS) {
      withStore(`${what}: the parallel report is the sequential one`, async (ts, dir) => {
        await tamper(ts);
        const { sequential, fallbacks } = await compare(ts, dir);
        const named = sequential.filter((r) => r.stream === S);
        // The keyring finds every one of these; a third party all but the last batch's rewrite and the re-seal.
        assert.ok(named[0]?.problems.length !== 0, `${what}: ${JSON.stringify(named[0]?.problems)}`);
        assert.ok(fallbacks.length > 0);
      });
    }

    withStore('a v1 stream continued in v2 verifies sequentially, with the same report', async (ts, dir) => {
      const v1 = buildChain('gw-mixed', 50, ring, signer, [50]);
      const v2 = buildChainV2('gw-mixed', 120, ring, signer, [120], { from: v1End(v1.records), batch: [9] });
      await ts.tamper.insertRows([...v1.records.map((r) => ({ stream: r.stream, seq: r.seq, time: r.time, subject: r.subject, decision: r.decision, hash: r.hash, data: recordData(r) })), ...v2.rows]);
      await ts.store.append([], [...v1.checkpoints, ...v2.checkpoints]);
      const { sequential, fallbacks } = await compare(ts, dir);
      for (const r of sequential) assert.deepEqual(r.problems, []);
      assert.ok(fallbacks.some((f) => f.startsWith('gw-mixed')));
    });
  });
}

suite('sqlite', makeSqlite);
suite('postgres', makePostgres);

for (const [name, make] of [
  ['sqlite', makeSqlite],
  ['postgres', makePostgres],
] as const) {
  it(`${name}: a stream the AuditWriter wrote (two runs, a crash gap) — parallel where it can, the sequential report always`, async (t) => {
    const ts = await make(t);
    if (ts === undefined) return;
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-par-writer-'));
    try {
      const opts = (store = ts.store) => ({ store, keyring: ring, signer, stateDir: join(dir, 'state'), instance: 'test', mode: 'async' as const, flushIntervalMs: 5, batchMax: 113, checkpointRecords: 400, checkpointIntervalMs: 0, spoolLimitBytes: 1 << 26 });
      const w = await AuditWriter.open(opts());
      for (let i = 0; i < 1200; i++) {
        void w.append(chainBody(i));
        if (i % 100 === 99) await new Promise((r) => setImmediate(r));
      }
      await w.close();
      const clean = await compare(ts, dir);
      assert.deepEqual(clean.fallbacks, []);
      for (const r of clean.sequential) assert.deepEqual(r.problems, []);
      // An abandoned writer (async: seqs handed out, never stored) and a restart that declares them.
      const s2 = ts.reopen();
      const w2 = await AuditWriter.open({ ...opts(s2), flushIntervalMs: 60_000 });
      for (let i = 0; i < 50; i++) void w2.append(chainBody(i));
      await w2.flush();
      for (let i = 0; i < 3; i++) void w2.append(chainBody(i));
      const s3 = ts.reopen();
      const w3 = await AuditWriter.open(opts(s3));
      for (let i = 0; i < 50; i++) void w3.append(chainBody(i));
      await w3.close();
      await s3.close();
      await s2.close();
      const gap = await compare(ts, dir);
      assert.ok(gap.sequential.every((r) => r.problems.length === 1 && r.problems[0]?.kind === 'gap'), JSON.stringify(gap.sequential.map((r) => r.problems)));
      assert.ok(gap.fallbacks.length > 0);
    } finally {
      await ts.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

describe('parallel verification of export files not laid out as `audit export` writes them', () => {
  it('a line that is not JSON, a stream split in two runs, a stray line: the sequential report', async (t) => {
    const ts = await makeSqlite(t);
    if (ts === undefined) return;
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-par-export-'));
    t.after(async () => {
      await ts.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });
    await ts.tamper.insertRows(built.rows);
    await ts.store.append([], built.checkpoints);
    const file = join(dir, 'export.jsonl');
    await exportStore(ts.store, file);
    const lines = readFileSync(file, 'utf8').split('\n');
    const variants: Array<[string, string[]]> = [
      ['a line cut', lines.map((l, i) => (i === 500 ? l.slice(0, 100) : l))],
      ['a stream in two runs', [...lines.slice(0, 400), lines[N + 1] as string, ...lines.slice(400)]],
      ['an empty line and CRLF', lines.map((l, i) => (i === 30 ? `${l}\r` : i === 31 ? `\n${l}` : l))],
      ['a record line with a space', lines.map((l, i) => (i === 44 ? l.replace('{"record":', '{ "record":') : l))],
      ['the header lists a stream without records', [JSON.stringify({ ...(JSON.parse(lines[0] as string) as object), streams: [S, 'gw-gone'] }), ...lines.slice(1)]],
    ];
    for (const [what, variant] of variants) {
      writeFileSync(file, variant.join('\n'));
      for (const o of [KEYED, THIRD]) {
        const fallbacks: string[] = [];
        assert.deepEqual(await verifyExportParallel(file, o, popts(fallbacks)), await verifyExport(file, o), what);
        assert.ok(fallbacks.length > 0, what);
      }
    }
  });
});
