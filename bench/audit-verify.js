#!/usr/bin/env node
// Verification throughput of the audit trail (not a test): records/s of `gatehouse audit
// verify`'s code paths on v1 and v2 data, from SQLite, from an export file and from
// PostgreSQL, sequential (verify.ts, one thread) and parallel (verify-parallel.ts, worker
// threads), with the keyring (every MAC / seal checked) and checkpoint signatures. Uses
// the compiled dist/.
//
//   node bench/audit-verify.js [--records 300000] [--runs 5] [--workers N] [--formats 1,2] [--no-postgres] [--pg URL] [--third-party]
//
// The data is built once per format with the reference sealers (chain.ts for v1, v2.ts
// sealBatch for v2: batches of 1000, as a busy writer commits them), a signed checkpoint
// every 10 000 records, stored with the stores' own append, exported with `audit export`'s
// code. Each run measures every configuration once, in a rotated order (interleaved:
// machine noise spreads over all of them); the table gives medians and every run. Also
// reported: process CPU per record (user + system, all threads) and the load average.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { benchBody } from './audit-body.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(path.join(ROOT, 'dist', p));
const { createSqliteAuditStore } = await dist('audit/store/sqlite.js');
const { createPostgresAuditStore } = await dist('audit/store/postgres.js');
const { createKeyring } = await dist('audit/keyring.js');
const { createSigner } = await dist('audit/checkpoint.js');
const { emptyBody } = await dist('audit/record.js');
const { Chain, recordData } = await dist('audit/chain.js');
const { canonical, genesis } = await dist('audit/canonical.js');
const { MerkleAccumulator } = await dist('audit/merkle.js');
const { LeafHasher, sealBatch } = await dist('audit/v2.js');
const { exportStore, verifyExport, verifyStore } = await dist('audit/sources.js');
const { verifyExportParallel, verifyStoreParallel } = await dist('audit/verify-parallel.js');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const N = Number(opt('records', 300000));
const RUNS = Number(opt('runs', 5));
const WORKERS = opt('workers', undefined) === undefined ? undefined : Number(opt('workers'));
const PG_URL = opt('pg', 'postgres://postgres@127.0.0.1:5432/test');
const WITH_PG = !args.includes('--no-postgres');
const THIRD = args.includes('--third-party');
const FORMATS = String(opt('formats', '1,2')).split(',').map(Number);
const BATCH = 1000;
const CP_EVERY = 10000;
const STREAM = 'gw-bench-verify';

const keyring = createKeyring(new Map([['k1', crypto.randomBytes(32)]]), 'k1');
const signer = createSigner(crypto.generateKeyPairSync('ed25519').privateKey);
const vopts = THIRD ? { publicKey: signer.publicKey } : { keyring, publicKey: signer.publicKey };

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Store rows and checkpoints of N records in `format` (1 or 2). */
function build(format) {
  const rows = [];
  const checkpoints = [];
  const time = (i) => new Date(1_700_000_000_000 + i).toISOString();
  if (format === 1) {
    const chain = new Chain(STREAM, 0, genesis(STREAM).toString('hex'), new MerkleAccumulator());
    for (let i = 1; i <= N; i++) {
      const r = chain.seal(benchBody(emptyBody, time(i), i), i, keyring);
      rows.push({ stream: STREAM, seq: i, time: r.time, subject: r.subject, decision: r.decision, hash: r.hash, data: recordData(r) });
      if (i % CP_EVERY === 0) checkpoints.push({ checkpoint: signer.sign({ stream: STREAM, seq: i, head_hash: chain.prev, merkle_root: chain.merkle.rootHex(), time: time(i) }), frontier: chain.merkle.state() });
    }
    return { rows, checkpoints };
  }
  const merkle = new MerkleAccumulator();
  const hasher = new LeafHasher();
  let prev = genesis(STREAM).toString('hex');
  for (let first = 1; first <= N; first += BATCH) {
    const last = Math.min(N, first + BATCH - 1);
    const recs = [];
    for (let i = first; i <= last; i++) recs.push({ ...benchBody(emptyBody, time(i), i), v: 2, stream: STREAM, seq: i, kid: keyring.activeId });
    const b = sealBatch(recs.map((r) => canonical(r)), first, prev, keyring.active, hasher);
    recs.forEach((r, j) => {
      rows.push({ stream: STREAM, seq: r.seq, time: r.time, subject: r.subject, decision: r.decision, hash: b.leaves[j], data: b.data[j] });
      merkle.pushLeaf(b.leaves[j]);
    });
    prev = b.seal;
    if (last % CP_EVERY === 0 || last === N) checkpoints.push({ checkpoint: signer.sign({ stream: STREAM, seq: last, head_hash: b.seal, merkle_root: merkle.rootHex(), time: time(last) }), frontier: merkle.state() });
  }
  return { rows, checkpoints };
}

async function fill(store, data) {
  for (let i = 0; i < data.rows.length; i += 5000) await store.append(data.rows.slice(i, i + 5000), []);
  await store.append([], data.checkpoints);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-verify-'));
const configs = [];
const cleanups = [];
let pgSql = null;
try {
  for (const format of FORMATS) {
    const data = build(format);
    const file = path.join(dir, `v${format}.sqlite`);
    const store = createSqliteAuditStore(file);
    await store.init();
    await fill(store, data);
    const exportFile = path.join(dir, `v${format}.jsonl`);
    await exportStore(store, exportFile);
    cleanups.push(() => store.close());
    const src = { kind: 'sqlite', file };
    configs.push({ name: `v${format} SQLite, sequential`, run: () => verifyStore(store, vopts) });
    configs.push({ name: `v${format} SQLite, parallel`, run: () => verifyStoreParallel(store, src, vopts, {}, { workers: WORKERS }) });
    configs.push({ name: `v${format} export, sequential`, run: () => verifyExport(exportFile, vopts) });
    configs.push({ name: `v${format} export, parallel`, run: () => verifyExportParallel(exportFile, vopts, { workers: WORKERS }) });
    if (WITH_PG) {
      const { default: postgres } = await import(path.join(ROOT, 'node_modules', 'postgres', 'src', 'index.js'));
      const schema = `bench_verify_${format}_${crypto.randomBytes(4).toString('hex')}`;
      pgSql ??= postgres(PG_URL, { max: 4, onnotice: () => undefined });
      const sql = pgSql;
      const pstore = createPostgresAuditStore(sql, schema);
      await pstore.migrate();
      await pstore.init();
      await fill(pstore, data);
      await sql.unsafe(`VACUUM ANALYZE ${schema}.audit_records`);
      cleanups.push(async () => {
        await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        for (const r of ['writer', 'reader', 'pruner']) await sql.unsafe(`DROP ROLE IF EXISTS ${schema}_audit_${r}`);
      });
      const psrc = { kind: 'postgres', config: { url: PG_URL, schema, max_connections: 1, connect_timeout: 5000 }, configDir: ROOT };
      configs.push({ name: `v${format} PostgreSQL, sequential`, run: () => verifyStore(pstore, vopts) });
      configs.push({ name: `v${format} PostgreSQL, parallel`, run: () => verifyStoreParallel(pstore, psrc, vopts, {}, { workers: WORKERS }) });
    }
    process.stderr.write(`v${format}: ${N} records stored and exported\n`);
  }

  const rate = new Map(configs.map((c) => [c.name, []]));
  const cpu = new Map(configs.map((c) => [c.name, []]));
  for (let run = 0; run < RUNS; run++) {
    // Rotated order: no configuration always runs first (or right after a heavy one).
    const order = configs.map((_, i) => configs[(i + run) % configs.length]);
    for (const c of order) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const reps = await c.run();
      const s = (performance.now() - t0) / 1000;
      const u = process.cpuUsage(c0);
      const n = reps.reduce((a, r) => a + r.records, 0);
      if (n !== N || reps.some((r) => r.problems.length > 0)) throw new Error(`${c.name}: ${n} records, problems ${JSON.stringify(reps.map((r) => r.problems.slice(0, 3)))}`);
      rate.get(c.name).push(n / s);
      cpu.get(c.name).push((u.user + u.system) / n);
    }
    process.stderr.write(`run ${run + 1}/${RUNS}: ${configs.map((c) => `${c.name} ${Math.round(rate.get(c.name).at(-1))}/s`).join(', ')}\n`);
  }

  const fmt = (x) => Math.round(x).toLocaleString('en-US');
  const out = [
    '# gatehouse audit verification benchmark',
    '',
    `- \`node bench/audit-verify.js ${args.join(' ')}\`, ${N} records per stream, ${RUNS} interleaved runs, ${THIRD ? 'third party (no keyring: seals and MACs not checked)' : 'with the keyring (every MAC / seal)'}, checkpoint signatures checked; workers: ${WORKERS ?? `default (${os.availableParallelism()})`}`,
    `- node ${process.version}, ${os.cpus().length} CPUs, load average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    '',
    '| configuration | median records/s | CPU µs/record (all threads) | records/s per run |',
    '| --- | ---: | ---: | --- |',
    ...configs.map((c) => `| ${c.name} | ${fmt(median(rate.get(c.name)))} | ${median(cpu.get(c.name)).toFixed(1)} | ${rate.get(c.name).map(fmt).join(', ')} |`),
    '',
  ];
  process.stdout.write(out.join('\n') + '\n');
} finally {
  for (const c of cleanups) await c();
  if (pgSql !== null) await pgSql.end({ timeout: 5 });
  fs.rmSync(dir, { recursive: true, force: true });
}
