#!/usr/bin/env node
// Audit trail benchmark (not a test): sustained append rate with chaining into the embedded
// (SQLite) and PostgreSQL stores, and the verification rate. Uses the compiled dist/.
//
//   node bench/audit.js [--records 200000] [--runs 5] [--no-postgres] [--pg URL]
//
// Each run: a fresh store, an AuditWriter in async mode (flush 10 ms, batch 2000, a signed
// checkpoint every 10 000 records), records produced 1000 per event-loop turn like a busy
// gateway would, timed until the last one is committed. Verification reads the same store
// back (storage order) and checks every MAC, hash, link and checkpoint signature.
// The append phase also reports the process CPU per record (process.cpuUsage, user + system,
// every thread of the process: the store's worker thread counts too), so throughput and CPU
// cost are seen together, and the main thread's busy time per record (event-loop
// utilization: what the gateway's request thread gives to audit, building the records included)
// and that thread's own CPU time (Linux), which, unlike its busy time, does not count the
// time it waited for a core on a loaded machine. "event-loop hold" is the time one store.append call of a
// 600-record sealed batch keeps the calling thread busy before it returns (what every
// in-flight request waits for at 5-6k req/s with the default 100 ms flush).
// Reports medians and every run. The per-request cost on the proxy pipeline is measured by
// `node bench/run.js --scenarios c,h` (gateway CPU µs/request with and without audit).
import crypto from 'node:crypto';
import { performance } from 'node:perf_hooks';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchBody } from './audit-body.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(path.join(ROOT, 'dist', p));
const { AuditWriter } = await dist('audit/writer.js');
const { createSqliteAuditStore } = await dist('audit/store/sqlite.js');
const { createPostgresAuditStore } = await dist('audit/store/postgres.js');
const { createKeyring } = await dist('audit/keyring.js');
const { createSigner } = await dist('audit/checkpoint.js');
const { emptyBody } = await dist('audit/record.js');
const { canonical, genesis } = await dist('audit/canonical.js');
const { sealBatch } = await dist('audit/v2.js');
const { verifyStore } = await dist('audit/sources.js');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const N = Number(opt('records', 200000));
const RUNS = Number(opt('runs', 5));
const PG_URL = opt('pg', 'postgres://postgres@127.0.0.1:5432/test');
const WITH_PG = !args.includes('--no-postgres');

const keyring = createKeyring(new Map([['k1', crypto.randomBytes(32)]]), 'k1');
const signer = createSigner(crypto.generateKeyPairSync('ed25519').privateKey);

const body = (i) => benchBody(emptyBody, new Date().toISOString(), i);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** CPU µs of the main thread so far (Linux: /proc/self/task/<pid>/stat, clock ticks of 10 ms); null elsewhere. */
function mainThreadCpuUs() {
  try {
    const f = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(x[11]) + Number(x[12])) * 10_000;
  } catch {
    return null;
  }
}

async function appendRun(store, stateDir) {
  const w = await AuditWriter.open({
    store, keyring, signer, stateDir, instance: 'bench', mode: 'async', flushIntervalMs: 10, batchMax: 2000,
    checkpointRecords: 10000, checkpointIntervalMs: 0, spoolLimitBytes: 1 << 30,
  });
  await w.flush();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const m0 = mainThreadCpuUs();
  const e0 = performance.eventLoopUtilization();
  for (let i = 0; i < N; i++) {
    void w.append(body(i));
    if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
  }
  await w.flush();
  const c = process.cpuUsage(c0);
  const m1 = mainThreadCpuUs();
  const e = performance.eventLoopUtilization(e0);
  const s = (performance.now() - t0) / 1000;
  await w.close();
  if (w.status().spool_bytes > 0) throw new Error('records were spooled: the store failed during the run');
  return { rate: N / s, cpuUs: (c.user + c.system) / N, mainUs: (e.active * 1000) / N, mainCpuUs: m0 === null || m1 === null ? null : (m1 - m0) / N };
}

// Event-loop hold of one append: BATCHES batches of 600 records sealed beforehand (sealing
// is not the store's work), each appended alone; the synchronous part of the call is what
// the caller's thread cannot give to anything else. Median over the batches, in ms.
const HOLD_BATCH = 600;
const HOLD_BATCHES = 15;
async function holdRun(store) {
  const stream = 'bench-hold';
  const batches = [];
  let prev = genesis(stream).toString('hex');
  let seq = 0;
  for (let b = 0; b < HOLD_BATCHES; b++) {
    const bodies = [];
    for (let i = 0; i < HOLD_BATCH; i++) {
      const r = body(seq);
      Object.assign(r, { v: 2, stream, seq: ++seq, kid: keyring.activeId });
      bodies.push(r);
    }
    const sealed = sealBatch(bodies.map(canonical), bodies[0].seq, prev, keyring.active);
    prev = sealed.seal;
    batches.push(bodies.map((r, i) => ({ stream, seq: r.seq, time: r.time, subject: r.subject, decision: r.decision, hash: sealed.leaves[i], data: sealed.data[i] })));
  }
  const holds = [];
  for (const recs of batches) {
    const t0 = performance.now();
    const p = store.append(recs, []);
    holds.push(performance.now() - t0);
    await p;
  }
  return median(holds);
}

async function verifyRun(store) {
  const t0 = performance.now();
  const reps = await verifyStore(store, { keyring, publicKey: signer.publicKey });
  const s = (performance.now() - t0) / 1000;
  const n = reps.reduce((a, r) => a + r.records, 0);
  if (reps.some((r) => r.problems.length > 0)) throw new Error(`verification found problems: ${JSON.stringify(reps[0].problems.slice(0, 3))}`);
  return n / s;
}

// The verifier's ceiling on this machine and store: read every record of the store and
// JSON.parse it, nothing else (no canonical form, no hash, no MAC, no Merkle). No verifier
// that reads the stored JSON can go faster than this, single-threaded.
async function readParseRun(store) {
  const t0 = performance.now();
  let n = 0;
  for (const s of await store.streams()) {
    let after = 0;
    for (;;) {
      const rows = await store.readRaw(s, after, 10_000);
      for (const r of rows) if (JSON.parse(r.data).seq > 0) n++;
      if (rows.length < 10_000) break;
      after = rows[rows.length - 1].id;
    }
  }
  return n / ((performance.now() - t0) / 1000);
}

// Calibration: how fast this machine hashes right now (per-call overhead dominates every
// audit figure: about five SHA-256-sized crypto calls per record).
function calibrate() {
  const n = 50000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) crypto.createHash('sha256').update(`calibration ${i}`).digest();
  return n / ((performance.now() - t0) / 1000);
}
const calib = [];

const results = { sqlite: [], verify: [], readParse: [], postgres: [], verifyPg: [], cpuSqlite: [], cpuPg: [], mainSqlite: [], mainPg: [], mainCpuSqlite: [], mainCpuPg: [], hold: [] };
for (let run = 0; run < RUNS; run++) {
  calib.push(calibrate());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-audit-'));
  const store = createSqliteAuditStore(path.join(dir, 'audit.sqlite'));
  try {
    const a = await appendRun(store, dir);
    results.sqlite.push(a.rate);
    results.cpuSqlite.push(a.cpuUs);
    results.mainSqlite.push(a.mainUs);
    if (a.mainCpuUs !== null) results.mainCpuSqlite.push(a.mainCpuUs);
    results.verify.push(await verifyRun(store));
    results.readParse.push(await readParseRun(store));
    results.hold.push(await holdRun(store));
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stderr.write(`run ${run + 1}/${RUNS}: sqlite ${Math.round(results.sqlite.at(-1))}/s (${results.cpuSqlite.at(-1).toFixed(1)} µs CPU/record, main thread busy ${results.mainSqlite.at(-1).toFixed(1)} µs/record), verify ${Math.round(results.verify.at(-1))}/s, append hold ${results.hold.at(-1).toFixed(2)} ms/${HOLD_BATCH}\n`);
  if (WITH_PG) {
    const { default: postgres } = await import(path.join(ROOT, 'node_modules', 'postgres', 'src', 'index.js'));
    const schema = `bench_audit_${crypto.randomBytes(4).toString('hex')}`;
    const sql = postgres(PG_URL, { max: 4, onnotice: () => undefined });
    const pdir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-audit-pg-'));
    const pstore = createPostgresAuditStore(sql, schema);
    try {
      // The owner's step (`gatehouse audit migrate`); stores built before it existed create
      // their tables in init() and have no migrate().
      if (typeof pstore.migrate === 'function') await pstore.migrate();
      const a = await appendRun(pstore, pdir);
      results.postgres.push(a.rate);
      results.cpuPg.push(a.cpuUs);
      results.mainPg.push(a.mainUs);
      if (a.mainCpuUs !== null) results.mainCpuPg.push(a.mainCpuUs);
      results.verifyPg.push(await verifyRun(pstore));
      process.stderr.write(`run ${run + 1}/${RUNS}: postgres ${Math.round(results.postgres.at(-1))}/s, verify ${Math.round(results.verifyPg.at(-1))}/s\n`);
    } finally {
      await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      for (const r of ['writer', 'reader', 'pruner']) await sql.unsafe(`DROP ROLE IF EXISTS ${schema}_audit_${r}`);
      await pstore.close();
      fs.rmSync(pdir, { recursive: true, force: true });
    }
  }
}

const fmt = (x) => Math.round(x).toLocaleString('en-US');
const row = (name, xs, target) => `| ${name} | ${xs.length ? fmt(median(xs)) : 'n/a'} | ${target} | ${xs.map(fmt).join(', ')} |`;
const f1 = (x) => x.toFixed(1);
const f2 = (x) => x.toFixed(2);
const row2 = (name, xs, f) => `| ${name} | ${xs.length ? f(median(xs)) : 'n/a'} | ${xs.map(f).join(', ')} |`;
const out = [
  `# gatehouse audit benchmark`,
  '',
  `- \`node bench/audit.js ${args.join(' ')}\`, ${N} records per run, ${RUNS} runs; node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
  '',
  '| measure | median records/s | target | per run |',
  '| --- | ---: | ---: | --- |',
  row('append, chained, SQLite (WAL, synchronous=FULL)', results.sqlite, '≥ 50,000'),
  row('append, chained, PostgreSQL', results.postgres, '≥ 20,000'),
  row('verify, sequential (SQLite store: leaves, seals, seqs, Merkle roots, signatures; the parallel path: bench/audit-verify.js)', results.verify, '—'),
  row('verify (PostgreSQL store)', results.verifyPg, '—'),
  row('ceiling for any verifier: read + JSON.parse only (SQLite store, one thread)', results.readParse, '—'),
  row('calibration: SHA-256 calls (createHash, 20 bytes)', calib, '—'),
  '',
  '| append phase | median | per run |',
  '| --- | ---: | --- |',
  row2('process CPU per record, SQLite (µs, user + system, all threads)', results.cpuSqlite, f1),
  row2('process CPU per record, PostgreSQL (µs)', results.cpuPg, f1),
  row2('main thread busy per record, SQLite (µs, event-loop utilization)', results.mainSqlite, f1),
  row2('main thread busy per record, PostgreSQL (µs)', results.mainPg, f1),
  row2('main thread CPU per record, SQLite (µs, user + system of that thread alone; Linux)', results.mainCpuSqlite, f1),
  row2('main thread CPU per record, PostgreSQL (µs)', results.mainCpuPg, f1),
  row2(`event-loop hold of one store.append, ${HOLD_BATCH} sealed records, SQLite (ms)`, results.hold, f2),
  '',
];
process.stdout.write(out.join('\n') + '\n');
