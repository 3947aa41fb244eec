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
import { genesis } from './canonical.js';
import { Chain } from './chain.js';
import { createSigner, type CheckpointSigner } from './checkpoint.js';
import { createKeyring, type Keyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import { emptyBody, type ChainedRecord } from './record.js';
import { createPostgresAuditStore } from './store/postgres.js';
import { createSqliteAuditStore } from './store/sqlite.js';
import type { AuditStore, StoredCheckpoint } from './store/types.js';

export interface Tamper {
  /** Replaces the stored JSON of the row holding (stream, seq) (first such row). */
  setData(stream: string, seq: number, data: string): Promise<void>;
  getData(stream: string, seq: number): Promise<string>;
  deleteSeqs(stream: string, fromSeq: number, toSeq: number): Promise<void>;
  insertRaw(r: ChainedRecord): Promise<void>;
  setCheckpointData(stream: string, seq: number, data: string): Promise<void>;
  /** Deletes every checkpoint of the stream. */
  deleteCheckpoints(stream: string): Promise<void>;
  /** Plain UPDATE / DELETE / TRUNCATE (or DELETE of everything) without switching protection off. */
  plain(op: 'update' | 'delete' | 'truncate'): Promise<unknown>;
}

export interface TestStore {
  readonly store: AuditStore;
  readonly tamper: Tamper;
  /** PostgreSQL only: the test's schema. */
  readonly schema?: string;
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
    const b = emptyBody('exchange', new Date(1_700_000_000_000 + i * 1000).toISOString());
    b.request_id = `req-${i}`;
    b.method = 'GET';
    b.path = `/item/${i}`;
    b.status = 200;
    b.decision = i % 3 === 0 ? 'refused' : 'allowed';
    b.subject = i % 2 === 0 ? 'alice' : null;
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
