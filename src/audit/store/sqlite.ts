/**
 * The embedded audit store: SQLite in WAL mode (better-sqlite3) in `state.dir`. Each
 * append is one transaction; `synchronous = FULL` so a committed batch survives a power
 * loss, not only a process crash (the sync mode's promise). better-sqlite3 is
 * synchronous: a batch blocks the event loop for its insert time, which is why the writer
 * batches (one transaction per flush, not per record).
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { recordData } from '../chain.js';
import type { Checkpoint } from '../checkpoint.js';
import type { ChainedRecord } from '../record.js';
import type { AuditStore, RecordQuery, StoredCheckpoint, StreamHead } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_records (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  stream TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time TEXT NOT NULL,
  subject TEXT,
  decision TEXT,
  hash TEXT NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_stream_seq ON audit_records (stream, seq);
CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records (time);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  stream TEXT NOT NULL,
  seq INTEGER NOT NULL,
  data TEXT NOT NULL,
  frontier TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_checkpoints_stream_seq ON audit_checkpoints (stream, seq);
-- Append-only inside the database too (a change needs dropping the trigger first, which
-- the verifier's checks catch anyway).
CREATE TRIGGER IF NOT EXISTS audit_records_no_update BEFORE UPDATE ON audit_records BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_records_no_delete BEFORE DELETE ON audit_records BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
`;

export function createSqliteAuditStore(file: string): AuditStore {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);
  const insRecord = db.prepare('INSERT INTO audit_records (stream, seq, time, subject, decision, hash, data) VALUES (?, ?, ?, ?, ?, ?, ?)');
  // Multi-row INSERTs: the per-statement overhead is paid once per ROWS records.
  const ROWS = 64;
  const insMany = db.prepare(`INSERT INTO audit_records (stream, seq, time, subject, decision, hash, data) VALUES ${Array.from({ length: ROWS }, () => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}`);
  const args: unknown[] = new Array<unknown>(ROWS * 7);
  const insCp = db.prepare('INSERT INTO audit_checkpoints (stream, seq, data, frontier) VALUES (?, ?, ?, ?)');
  const appendTx = db.transaction((records: readonly ChainedRecord[], cps: readonly StoredCheckpoint[]) => {
    let i = 0;
    for (; i + ROWS <= records.length; i += ROWS) {
      for (let j = 0; j < ROWS; j++) {
        const r = records[i + j] as ChainedRecord;
        const o = j * 7;
        args[o] = r.stream;
        args[o + 1] = r.seq;
        args[o + 2] = r.time;
        args[o + 3] = r.subject;
        args[o + 4] = r.decision;
        args[o + 5] = r.hash;
        args[o + 6] = recordData(r);
      }
      insMany.run(args);
    }
    for (; i < records.length; i++) {
      const r = records[i] as ChainedRecord;
      insRecord.run(r.stream, r.seq, r.time, r.subject, r.decision, r.hash, recordData(r));
    }
    for (const c of cps) insCp.run(c.checkpoint.stream, c.checkpoint.seq, JSON.stringify(c.checkpoint), JSON.stringify(c.frontier));
  });
  const headQ = db.prepare('SELECT seq, hash FROM audit_records WHERE stream = ? ORDER BY seq DESC, id DESC LIMIT 1');
  const lastCpQ = db.prepare('SELECT data, frontier FROM audit_checkpoints WHERE stream = ? ORDER BY seq DESC, id DESC LIMIT 1');
  const hashesQ = db.prepare('SELECT hash FROM audit_records WHERE stream = ? AND seq > ? ORDER BY seq, id');
  const streamsQ = db.prepare('SELECT DISTINCT stream FROM audit_records UNION SELECT DISTINCT stream FROM audit_checkpoints ORDER BY 1');
  const rawQ = db.prepare('SELECT id, data FROM audit_records WHERE stream = ? AND id > ? ORDER BY id LIMIT ?');
  const cpsQ = db.prepare('SELECT data FROM audit_checkpoints WHERE stream = ? ORDER BY id');
  return {
    kind: 'sqlite',
    async init() {},
    async append(records, cps) {
      appendTx(records, cps);
    },
    async head(stream) {
      const row = headQ.get(stream) as { seq: number; hash: string } | undefined;
      return row ? ({ seq: row.seq, hash: row.hash } satisfies StreamHead) : null;
    },
    async lastCheckpoint(stream) {
      const row = lastCpQ.get(stream) as { data: string; frontier: string } | undefined;
      return row ? { checkpoint: JSON.parse(row.data) as Checkpoint, frontier: JSON.parse(row.frontier) as StoredCheckpoint['frontier'] } : null;
    },
    async hashesAfter(stream, after) {
      return (hashesQ.all(stream, after) as Array<{ hash: string }>).map((r) => Buffer.from(r.hash, 'hex'));
    },
    async streams() {
      return (streamsQ.all() as Array<{ stream: string }>).map((r) => r.stream);
    },
    async readRaw(stream, afterId, limit) {
      return rawQ.all(stream, afterId, limit) as Array<{ id: number; data: string }>;
    },
    async checkpoints(stream) {
      return (cpsQ.all(stream) as Array<{ data: string }>).map((r) => JSON.parse(r.data) as Checkpoint);
    },
    async query(q: RecordQuery) {
      const where: string[] = [];
      const args: unknown[] = [];
      if (q.stream !== undefined) {
        where.push('stream = ?');
        args.push(q.stream);
      }
      if (q.from !== undefined) {
        where.push('time >= ?');
        args.push(q.from);
      }
      if (q.to !== undefined) {
        where.push('time < ?');
        args.push(q.to);
      }
      if (q.subject !== undefined) {
        where.push('subject = ?');
        args.push(q.subject);
      }
      if (q.decision !== undefined) {
        where.push('decision = ?');
        args.push(q.decision);
      }
      const sql = `SELECT data FROM audit_records ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY time, id LIMIT ?`;
      return (db.prepare(sql).all(...args, q.limit) as Array<{ data: string }>).map((r) => JSON.parse(r.data) as ChainedRecord);
    },
    async close() {
      db.close();
    },
  };
}
