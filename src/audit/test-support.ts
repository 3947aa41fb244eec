/**
 * Shared helpers for the audit tests (not part of the public API): a fresh store of
 * either kind with "attacker" operations that bypass the append-only protection the way
 * someone with the database file or owner rights could, and a chain builder.
 */
import { randomBytes } from 'node:crypto';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import postgres from 'postgres';
import type { TestContext } from 'node:test';
import { needPostgres, POSTGRES_URL } from '../testing/services.js';
import { canonical, genesis } from './canonical.js';
import { Chain } from './chain.js';
import { createSigner, type CheckpointSigner } from './checkpoint.js';
import { createKeyring, type Keyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import { emptyBody, type AuditBody, type ChainedRecord, type ChainFields } from './record.js';
import { createPostgresAuditStore } from './store/postgres.js';
import { createSqliteAuditStore } from './store/sqlite.js';
import type { AuditStore, StoredCheckpoint } from './store/types.js';
import { LeafHasher, sealBatch, V2 } from './v2.js';

export interface Tamper {
  /** Replaces the stored JSON of the row holding (stream, seq) (first such row). */
  setData(stream: string, seq: number, data: string): Promise<void>;
  getData(stream: string, seq: number): Promise<string>;
  deleteSeqs(stream: string, fromSeq: number, toSeq: number): Promise<void>;
  insertRaw(r: ChainedRecord): Promise<void>;
  /** Inserts rows as given (storage order = array order), in one transaction: v2 data before the store writes it. */
  insertRows(rows: readonly RawRow[]): Promise<void>;
  setCheckpointData(stream: string, seq: number, data: string): Promise<void>;
  /** Deletes every checkpoint of the stream. */
  deleteCheckpoints(stream: string): Promise<void>;
  /** Plain UPDATE / DELETE / TRUNCATE (or DELETE of everything) without switching protection off. */
  plain(op: 'update' | 'delete' | 'truncate'): Promise<unknown>;
}

/** One row of audit_records as a store keeps it (`hash`: a v1 record's hash, a v2 record's leaf). */
export interface RawRow {
  readonly stream: string;
  readonly seq: number;
  readonly time: string;
  readonly subject: string | null;
  readonly decision: string | null;
  readonly hash: string;
  readonly data: string;
}

export interface TestStore {
  readonly store: AuditStore;
  readonly tamper: Tamper;
  /** PostgreSQL only: the test's schema. */
  readonly schema?: string;
  /** SQLite only: the database file. */
  readonly file?: string;
  /** Opens another store object on the same database (a second process, a restart). */
  reopen(): AuditStore;
  cleanup(): Promise<void>;
}

export type MakeStore = (t: TestContext) => Promise<TestStore | undefined>;

export const makeSqlite: MakeStore = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-'));
  const file = join(dir, 'audit.sqlite');
  const store = createSqliteAuditStore(file);
  const evil = () => {
    const db = new Database(file);
    db.exec('DROP TRIGGER IF EXISTS audit_records_no_update; DROP TRIGGER IF EXISTS audit_records_no_delete; DROP TRIGGER IF EXISTS audit_checkpoints_no_update; DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;');
    return db;
  };
  const tamper: Tamper = {
    async setData(stream, seq, data) {
      const db = evil();
      db.prepare('UPDATE audit_records SET data = ? WHERE id = (SELECT min(id) FROM audit_records WHERE stream = ? AND seq = ?)').run(data, stream, seq);
      db.close();
    },
    async getData(stream, seq) {
      const db = new Database(file, { readonly: true });
      const row = db.prepare('SELECT data FROM audit_records WHERE stream = ? AND seq = ? ORDER BY id LIMIT 1').get(stream, seq) as { data: string };
      db.close();
      return row.data;
    },
    async deleteSeqs(stream, a, b) {
      const db = evil();
      db.prepare('DELETE FROM audit_records WHERE stream = ? AND seq BETWEEN ? AND ?').run(stream, a, b);
      db.close();
    },
    async insertRaw(r) {
      const db = new Database(file);
      db.prepare('INSERT INTO audit_records (stream, seq, time, subject, decision, hash, data) VALUES (?, ?, ?, ?, ?, ?, ?)').run(r.stream, r.seq, r.time, r.subject, r.decision, r.hash, JSON.stringify(r));
      db.close();
    },
    async insertRows(rows) {
      await store.init(); // the store's worker creates the tables
      const db = new Database(file);
      const ins = db.prepare('INSERT INTO audit_records (stream, seq, time, subject, decision, hash, data) VALUES (?, ?, ?, ?, ?, ?, ?)');
      db.transaction(() => {
        for (const r of rows) ins.run(r.stream, r.seq, r.time, r.subject, r.decision, r.hash, r.data);
      })();
      db.close();
    },
    async setCheckpointData(stream, seq, data) {
      const db = evil();
      db.prepare('UPDATE audit_checkpoints SET data = ? WHERE stream = ? AND seq = ?').run(data, stream, seq);
      db.close();
    },
    async deleteCheckpoints(stream) {
      const db = evil();
      db.prepare('DELETE FROM audit_checkpoints WHERE stream = ?').run(stream);
      db.close();
    },
    async plain(op) {
      const db = new Database(file);
      try {
        if (op === 'update') db.exec("UPDATE audit_records SET data = '{}'");
        else db.exec('DELETE FROM audit_records');
      } finally {
        db.close();
      }
    },
  };
  return {
    store,
    tamper,
    file,
    reopen: () => createSqliteAuditStore(file),
    async cleanup() {
      await store.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

export const makePostgres: MakeStore = async (t) => {
  if (!(await needPostgres(t))) return undefined;
  const schema = `audit_t_${randomBytes(6).toString('hex')}`;
  const sql = postgres(POSTGRES_URL, { max: 4, onnotice: () => undefined });
  const store = createPostgresAuditStore(sql, schema);
  await store.migrate();
  await store.init();
  const admin = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
  const recs = admin(`${schema}.audit_records`);
  const cps = admin(`${schema}.audit_checkpoints`);
  // The attacker is the owner: it switches the append-only triggers off first.
  const evil = async <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) =>
    admin.begin(async (tx) => {
      await tx`ALTER TABLE ${recs} DISABLE TRIGGER USER`;
      await tx`ALTER TABLE ${cps} DISABLE TRIGGER USER`;
      const r = await fn(tx);
      await tx`ALTER TABLE ${recs} ENABLE TRIGGER USER`;
      await tx`ALTER TABLE ${cps} ENABLE TRIGGER USER`;
      return r;
    });
  const tamper: Tamper = {
    async setData(stream, seq, data) {
      await evil((tx) => tx`UPDATE ${recs} SET data = ${data} WHERE id = (SELECT min(id) FROM ${recs} WHERE stream = ${stream} AND seq = ${seq})`);
    },
    async getData(stream, seq) {
      const rows = await admin<Array<{ data: string }>>`SELECT data FROM ${recs} WHERE stream = ${stream} AND seq = ${seq} ORDER BY id LIMIT 1`;
      return (rows[0] as { data: string }).data;
    },
    async deleteSeqs(stream, a, b) {
      await evil((tx) => tx`DELETE FROM ${recs} WHERE stream = ${stream} AND seq BETWEEN ${a} AND ${b}`);
    },
    async insertRaw(r) {
      await admin`INSERT INTO ${recs} (stream, seq, time, subject, decision, hash, data) VALUES (${r.stream}, ${r.seq}, ${r.time}, ${r.subject}, ${r.decision}, ${r.hash}, ${JSON.stringify(r)})`;
    },
    async insertRows(rows) {
      // In chunks (a statement binds at most 65535 parameters), one transaction, storage order kept.
      await admin.begin(async (tx) => {
        for (let i = 0; i < rows.length; i += 5000) {
          const chunk = rows.slice(i, i + 5000).map((r) => ({ ...r }));
          await tx`INSERT INTO ${recs} (stream, seq, time, subject, decision, hash, data)
            SELECT x.stream, x.seq, x.time, x.subject, x.decision, x.hash, x.data
            FROM ROWS FROM (json_to_recordset(${JSON.stringify(chunk)}::text::json)
              AS (stream text, seq bigint, time text, subject text, decision text, hash text, data text))
              WITH ORDINALITY AS x(stream, seq, time, subject, decision, hash, data, n)
            ORDER BY x.n`;
        }
      });
    },
    async setCheckpointData(stream, seq, data) {
      await evil((tx) => tx`UPDATE ${cps} SET data = ${data} WHERE stream = ${stream} AND seq = ${seq}`);
    },
    async deleteCheckpoints(stream) {
      await evil((tx) => tx`DELETE FROM ${cps} WHERE stream = ${stream}`);
    },
    async plain(op) {
      if (op === 'update') return admin`UPDATE ${recs} SET data = '{}'`;
      if (op === 'delete') return admin`DELETE FROM ${recs}`;
      return admin`TRUNCATE ${recs}`;
    },
  };
  return {
    store,
    tamper,
    schema,
    reopen: () => createPostgresAuditStore(postgres(POSTGRES_URL, { max: 4, onnotice: () => undefined }), schema),
    async cleanup() {
      await store.close().catch(() => undefined);
      await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.unsafe(`DROP ROLE IF EXISTS ${schema}_audit_writer`);
      await admin.unsafe(`DROP ROLE IF EXISTS ${schema}_audit_reader`);
      await admin.unsafe(`DROP ROLE IF EXISTS ${schema}_audit_pruner`);
      await admin.end({ timeout: 2 });
    },
  };
};

export const HMAC_K1 = Buffer.alloc(32, 1);
export const HMAC_K2 = Buffer.alloc(32, 2);

export function keyring(keys: Record<string, Buffer>, active: string): Keyring {
  return createKeyring(new Map(Object.entries(keys)), active);
}

/** A minimal allowed exchange record body, numbered by its request id. */
export function testBody(i: number) {
  const b = emptyBody('exchange', new Date().toISOString());
  b.request_id = `r${i}`;
  b.decision = 'allowed';
  b.status = 200;
  return b;
}

export function testSigner(): CheckpointSigner {
  return createSigner(generateKeyPairSync('ed25519').privateKey);
}

/** Builds records 1..n of `stream` with checkpoints at every seq in `cpAt`. */
export function buildChain(stream: string, n: number, keys: Keyring, signer: CheckpointSigner, cpAt: readonly number[], from?: { seq: number; prev: string; merkle: MerkleAccumulator }): { records: ChainedRecord[]; checkpoints: StoredCheckpoint[] } {
  const chain = from ? new Chain(stream, from.seq, from.prev, from.merkle) : new Chain(stream, 0, genesis(stream).toString('hex'), new MerkleAccumulator());
  const records: ChainedRecord[] = [];
  const checkpoints: StoredCheckpoint[] = [];
  for (let i = chain.seq + 1; i <= n; i++) {
    const b = chainBody(i);
    records.push(chain.seal(b, i, keys));
    if (cpAt.includes(i)) {
      checkpoints.push({
        checkpoint: signer.sign({ stream, seq: i, head_hash: chain.prev, merkle_root: chain.merkle.rootHex(), time: new Date(1_700_000_000_000 + i * 1000).toISOString() }),
        frontier: chain.merkle.state(),
      });
    }
  }
  return { records, checkpoints };
}

/** The body of record `i` of a test stream (what buildChain and buildChainV2 write). */
export function chainBody(i: number): AuditBody {
  const b = emptyBody('exchange', new Date(1_700_000_000_000 + i * 1000).toISOString());
  b.request_id = `req-${i}`;
  b.method = 'GET';
  b.path = `/item/${i}`;
  b.status = 200;
  b.decision = i % 3 === 0 ? 'refused' : 'allowed';
  b.subject = i % 2 === 0 ? 'alice' : null;
  return b;
}

/** Where a v2 chain continues: the seq and chain value before it (a v1 record's hash, a seal, or the genesis) and the Merkle frontier. */
export interface ChainPoint {
  readonly seq: number;
  readonly prev: string;
  readonly merkle: MerkleAccumulator;
}

export interface BuiltV2 {
  /** The rows to store, in seq order (`data` the stored form). */
  readonly rows: RawRow[];
  readonly checkpoints: StoredCheckpoint[];
  /** Each batch: its first and last seq and its seal. */
  readonly batches: Array<{ first: number; last: number; seal: string }>;
  /** Where the chain ends (to continue it). */
  readonly end: ChainPoint;
}

/**
 * Records after `from` (default: the genesis) through `n` of `stream` as the v2 writer
 * stores them, sealed with v2.ts's reference sealer in batches whose sizes cycle through
 * `batch` (each batch also ends at every seq of `cpAt`, where a signed checkpoint is taken:
 * checkpoints are only ever at a batch's end). `bodies` replaces record bodies by seq.
 */
export function buildChainV2(
  stream: string,
  n: number,
  keys: Keyring,
  signer: CheckpointSigner,
  cpAt: readonly number[],
  opts: { from?: ChainPoint; batch?: readonly number[]; bodies?: ReadonlyMap<number, AuditBody> } = {},
): BuiltV2 {
  const from = opts.from ?? { seq: 0, prev: genesis(stream).toString('hex'), merkle: new MerkleAccumulator() };
  const merkle = MerkleAccumulator.from(from.merkle.state());
  const sizes = opts.batch ?? [4, 1, 7, 3, 2];
  const hasher = new LeafHasher();
  const rows: RawRow[] = [];
  const checkpoints: StoredCheckpoint[] = [];
  const batches: BuiltV2['batches'] = [];
  let prev = from.prev;
  let seq = from.seq;
  for (let k = 0; seq < n; k++) {
    const first = seq + 1;
    let last = Math.min(n, first + (sizes[k % sizes.length] as number) - 1);
    for (const c of cpAt) if (c >= first && c < last) last = c;
    const recs: Array<AuditBody & ChainFields> = [];
    for (let i = first; i <= last; i++) recs.push({ ...(opts.bodies?.get(i) ?? chainBody(i)), v: V2, stream, seq: i, kid: keys.activeId } as AuditBody & ChainFields);
    const b = sealBatch(recs.map((r) => canonical(r)), first, prev, keys.active, hasher);
    for (const [j, r] of recs.entries()) {
      rows.push({ stream, seq: r.seq, time: r.time, subject: r.subject, decision: r.decision, hash: b.leaves[j] as string, data: b.data[j] as string });
      merkle.pushLeaf(b.leaves[j] as string);
    }
    batches.push({ first, last, seal: b.seal });
    prev = b.seal;
    seq = last;
    if (cpAt.includes(last)) {
      checkpoints.push({ checkpoint: signer.sign({ stream, seq: last, head_hash: b.seal, merkle_root: merkle.rootHex(), time: new Date(1_700_000_000_000 + last * 1000).toISOString() }), frontier: merkle.state() });
    }
  }
  return { rows, checkpoints, batches, end: { seq, prev, merkle } };
}

/** A v1 chain's end as a ChainPoint (to continue it in v2: a stream upgraded to the new writer). */
export function v1End(records: readonly ChainedRecord[]): ChainPoint {
  const m = new MerkleAccumulator();
  for (const r of records) m.push(r.hash);
  const last = records[records.length - 1] as ChainedRecord;
  return { seq: last.seq, prev: last.hash, merkle: m };
}
