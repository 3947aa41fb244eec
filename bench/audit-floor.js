#!/usr/bin/env node
// The floors under the audit trail's targets (not a test): what each part of the work
// costs per record on one thread, measured with the compiled dist/ on this machine.
//
//   node bench/audit-floor.js [--records 100000] [--runs 5]
//
// Verification: reading a SQLite page, packing it for the verifier's thread, JSON.parse and
// the canonical form (what the keyring's fast path skips), the five SHA-256 calls of a record on their own,
// the fast-path check (HMAC + hash + fields), the Merkle push. Writing: building a record
// body, sealing it in v1 (in 2,000-record batches, as the writer did before chain v2) and
// the two halves of v2 sealing (the request thread's canonical bytes, the seal worker's
// hashes and stored forms), and inserting it into
// SQLite (WAL, synchronous=FULL, 600-record transactions) with the store's schema, and —
// for comparison — as one row per batch. CPU time (process.cpuUsage, user + system) per
// record, median of --runs passes; docs/audit.md ("Why the targets are not met") reads the
// bounds off these figures.
import crypto, { hash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { benchBody } from './audit-body.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(path.join(ROOT, 'dist', p));
const Database = createRequire(path.join(ROOT, 'package.json'))('better-sqlite3');
const { createKeyring } = await dist('audit/keyring.js');
const { emptyBody } = await dist('audit/record.js');
const { Chain, recordData } = await dist('audit/chain.js');
const { genesis, canonical } = await dist('audit/canonical.js');
const { MerkleAccumulator } = await dist('audit/merkle.js');
const { RecordHasher } = await dist('audit/chain-hash.js');
const { authentic } = await dist('audit/verify.js');
const { packStrings } = await dist('audit/store/sqlite-protocol.js');
const { wallTime } = await dist('audit/exchange-record.js');
const { CanonicalWriter } = await dist('audit/canonical-bytes.js');
const { sealBatch } = await dist('audit/v2.js');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const N = opt('records', 100000);
const RUNS = opt('runs', 5);
const PAGE = 10000;
const keyring = createKeyring(new Map([['k1', crypto.randomBytes(32)]]), 'k1');

const body = (i) => benchBody(emptyBody, wallTime(performance.now()), i);

/** CPU µs per record of f() (which handles N records), median of RUNS passes. */
function perRecord(f) {
  const xs = [];
  for (let k = 0; k < RUNS; k++) {
    const c0 = process.cpuUsage();
    f();
    const c = process.cpuUsage(c0);
    xs.push((c.user + c.system) / N);
  }
  xs.sort((a, b) => a - b);
  return { median: xs[xs.length >> 1], all: xs };
}

// The records: sealed as the writer seals them, kept in their stored form.
const S = 'floor';
const chain = new Chain(S, 0, genesis(S).toString('hex'), new MerkleAccumulator());
const data = [];
const hashes = [];
for (let i = 1; i <= N; i++) {
  const r = chain.seal(body(i), i, keyring);
  data.push(recordData(r));
  hashes.push(r.hash);
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-audit-floor-'));
const rows = [];
const row = (name, m) => rows.push([name, m]);

try {
  // --- verification
  const rdb = new Database(path.join(dir, 'read.sqlite'));
  rdb.pragma('journal_mode = WAL');
  rdb.exec('CREATE TABLE r (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, data TEXT NOT NULL)');
  const ins = rdb.prepare('INSERT INTO r (stream, data) VALUES (?, ?)');
  rdb.transaction(() => {
    for (const d of data) ins.run(S, d);
  })();
  const page = rdb.prepare('SELECT id, data FROM r WHERE +stream = ? AND id > ? ORDER BY id LIMIT ?').raw();
  row('verify: SQLite read, 10,000-row pages by rowid', perRecord(() => {
    for (let after = 0; ; ) {
      const p = page.all(S, after, PAGE);
      if (p.length < PAGE) break;
      after = p[p.length - 1][0];
    }
  }));
  rdb.close();
  row("verify: packing a page for the verifier's thread", perRecord(() => {
    for (let i = 0; i < N; i += PAGE) packStrings(data.slice(i, i + PAGE));
  }));
  row('verify: JSON.parse of a record (what the fast path skips)', perRecord(() => {
    for (const d of data) JSON.parse(d);
  }));
  const parsed = data.map((d) => JSON.parse(d));
  row('verify: rebuilding the canonical form (what the fast path skips too)', perRecord(() => {
    for (const r of parsed) canonical(r);
  }));
  // The five calls with a record's input sizes: HMAC inner (64 + 32 + canonical), HMAC
  // outer (64 + 32), record hash (32 + canonical + 32), Merkle leaf (33), Merkle node (65).
  const scratch = Buffer.alloc(256 + 3 * Math.max(...data.map((d) => d.length)));
  row('verify: the five SHA-256 calls alone (hex out)', perRecord(() => {
    for (const d of data) {
      const canon = d.length - 226;
      hash('sha256', scratch.subarray(0, 96 + canon), 'hex');
      hash('sha256', scratch.subarray(0, 96), 'hex');
      hash('sha256', scratch.subarray(64, 128 + canon), 'hex');
      hash('sha256', scratch.subarray(0, 33), 'hex');
      hash('sha256', scratch.subarray(0, 65), 'hex');
    }
  }));
  const hasher = new RecordHasher();
  const member = `,"stream":${JSON.stringify(S)},"subject":`;
  row('verify: fast-path check (HMAC, hash, fields; three of the five calls)', perRecord(() => {
    let prev = genesis(S).toString('hex');
    for (const d of data) {
      const l = authentic(d, member, prev, keyring, hasher);
      if (l === null) throw new Error('a sealed record failed the fast path');
      prev = l.hash;
    }
  }));
  row('verify: Merkle push (leaf + amortized node; the other two)', perRecord(() => {
    const m = new MerkleAccumulator();
    for (const h of hashes) m.push(h);
  }));

  // --- writing
  row('write: building a record body', perRecord(() => {
    for (let i = 0; i < N; i++) body(i);
  }));
  let k = 0;
  row('write: sealing (canonical form, HMAC, hash, Merkle, stored text), 2,000 per batch', (() => {
    const xs = [];
    for (let r = 0; r < RUNS; r++) {
      const c = new Chain(`seal-${k++}`, 0, genesis(S).toString('hex'), new MerkleAccumulator());
      let cpu = 0;
      for (let b = 0; b < N; b += 2000) {
        const bodies = [];
        for (let i = 0; i < 2000; i++) bodies.push(body(b + i));
        const c0 = process.cpuUsage();
        for (let i = 0; i < 2000; i++) c.seal(bodies[i], b + i + 1, keyring);
        const d = process.cpuUsage(c0);
        cpu += d.user + d.system;
      }
      xs.push(cpu / N);
    }
    xs.sort((a, b) => a - b);
    return { median: xs[xs.length >> 1], all: xs };
  })());
  // Chain v2 (the writer since issue #16): what the request thread does per record, and
  // what the seal worker does, each in 2,000-record batches.
  const v2Run = (part) => {
    const xs = [];
    for (let r = 0; r < RUNS; r++) {
      const out = new CanonicalWriter(Buffer.alloc(4 << 20), () => { throw new Error('the floor bench buffer is too small'); });
      const m = new MerkleAccumulator();
      let prev = genesis(S).toString('hex');
      let cpu = 0;
      for (let b = 0; b < N; b += 2000) {
        const bodies = [];
        for (let i = 0; i < 2000; i++) bodies.push(Object.assign(body(b + i), { v: 2, stream: S, seq: b + i + 1, kid: 'k1' }));
        const canons = part === 'worker' ? bodies.map(canonical) : null;
        const c0 = process.cpuUsage();
        if (part === 'loop') {
          out.pos = 0;
          for (let i = 0; i < 2000; i++) out.write(bodies[i]);
        } else {
          const sealed = sealBatch(canons, b + 1, prev, keyring.active);
          for (const l of sealed.leaves) m.pushLeaf(l);
          prev = sealed.seal;
        }
        const d = process.cpuUsage(c0);
        cpu += d.user + d.system;
      }
      xs.push(cpu / N);
    }
    xs.sort((a, b) => a - b);
    return { median: xs[xs.length >> 1], all: xs };
  };
  row('write v2, request thread: canonical form as UTF-8 bytes into the batch buffer', v2Run('loop'));
  row('write v2, seal worker: leaf, batch root, seal, stream Merkle push, stored form', v2Run('worker'));
  // SQLite inserts as the store makes them (same schema and indexes, 64-row statements,
  // 600-record transactions, WAL + synchronous=FULL), and one row per batch for comparison.
  const insertRun = (perBatch) => {
    const xs = [];
    for (let r = 0; r < RUNS; r++) {
      const f = path.join(dir, `w-${perBatch ? 'b' : 'r'}-${r}.sqlite`);
      const db = new Database(f);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.exec(`CREATE TABLE audit_records (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, seq INTEGER NOT NULL, time TEXT NOT NULL, subject TEXT, decision TEXT, hash TEXT NOT NULL, data TEXT NOT NULL);
        CREATE INDEX audit_records_stream_seq ON audit_records (stream, seq);
        CREATE INDEX audit_records_time ON audit_records (time);
        CREATE TABLE batches (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, first_seq INTEGER, last_seq INTEGER, data TEXT NOT NULL);`);
      const ROW = '(?, ?, ?, ?, ?, ?, ?)';
      const many = db.prepare(`INSERT INTO audit_records (stream, seq, time, subject, decision, hash, data) VALUES ${Array.from({ length: 64 }, () => ROW).join(', ')}`);
      const one = db.prepare(`INSERT INTO audit_records (stream, seq, time, subject, decision, hash, data) VALUES ${ROW}`);
      const batch = db.prepare('INSERT INTO batches (stream, first_seq, last_seq, data) VALUES (?, ?, ?, ?)');
      const a = new Array(64 * 7);
      const tx = db.transaction((lo, hi) => {
        if (perBatch) {
          batch.run(S, lo + 1, hi, data.slice(lo, hi).join('\n'));
          return;
        }
        let i = lo;
        for (; i + 64 <= hi; i += 64) {
          for (let j = 0; j < 64; j++) {
            const o = j * 7;
            a[o] = S;
            a[o + 1] = i + j + 1;
            a[o + 2] = '2026-11-22T22:14:07.123Z';
            a[o + 3] = null;
            a[o + 4] = 'allowed';
            a[o + 5] = hashes[i + j];
            a[o + 6] = data[i + j];
          }
          many.run(a);
        }
        for (; i < hi; i++) one.run(S, i + 1, '2026-11-22T22:14:07.123Z', null, 'allowed', hashes[i], data[i]);
      });
      const c0 = process.cpuUsage();
      for (let lo = 0; lo < N; lo += 600) tx(lo, Math.min(N, lo + 600));
      const c = process.cpuUsage(c0);
      xs.push((c.user + c.system) / N);
      db.close();
    }
    xs.sort((x, y) => x - y);
    return { median: xs[xs.length >> 1], all: xs };
  };
  row("write: SQLite insert, one row per record (the store's schema)", insertRun(false));
  row('write: SQLite insert, one row per 600-record batch (comparison)', insertRun(true));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

const cal = (() => {
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 200) {
    for (let i = 0; i < 1000; i++) crypto.createHash('sha256').update('gatehouse-calibration').digest();
    n += 1000;
  }
  return Math.round(n / ((performance.now() - t0) / 1000));
})();

console.log('# gatehouse audit floors\n');
console.log(`- \`node bench/audit-floor.js --records ${N} --runs ${RUNS}\`; node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; calibration ${cal.toLocaleString('en-US')} SHA-256 calls/s\n`);
console.log('| part (one thread) | CPU µs per record, median | per pass |');
console.log('| --- | ---: | --- |');
for (const [name, m] of rows) console.log(`| ${name} | ${m.median.toFixed(2)} | ${m.all.map((x) => x.toFixed(2)).join(', ')} |`);
