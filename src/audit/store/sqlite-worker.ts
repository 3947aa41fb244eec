/**
 * The worker thread of the SQLite audit store: it owns the better-sqlite3 connection and
 * runs every statement, so the synchronous inserts and the commit's fsync
 * (`synchronous = FULL`) never hold the gateway's event loop. One request at a time, in
 * arrival order (one append = one transaction, as before); every request gets one reply,
 * an error reply when SQLite throws (SQLITE_BUSY, SQLITE_FULL, a trigger...).
 *
 * A message without a numeric id cannot be answered: it is a programming error, and
 * throwing lets the thread die, which the store turns into failing every call (fail
 * closed) rather than leaving a caller waiting for a reply that never comes.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parentPort, workerData, type TransferListItem } from 'node:worker_threads';
import { packStrings, RECORD_NUMS, type AppendPayload, type PackedStrings, type Reply, type Request, type Results } from './sqlite-protocol.js';
import type { RecordQuery } from './types.js';
import { SQLITE_ARCHIVE_SCHEMA } from './archive-schema.js';
import { leafHex } from '../chain-hash.js';
import { isStoredV2, parseStoredV2 } from '../v2.js';

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

const port = parentPort;
if (port === null) throw new Error('sqlite-worker.js runs only as a worker thread of the SQLite audit store');
const { file, readOnly } = workerData as { file: string; readOnly?: boolean };

function open(): Database.Database {
  if (readOnly === true) {
    // Verifying and exporting: never create the file or a table (a missing or wiped store
    // must fail, not verify as an empty one), never write.
    let d: Database.Database;
    try {
      d = new Database(file, { readonly: true, fileMustExist: true });
    } catch (err) {
      throw new Error(`cannot open the audit database ${file} read-only: ${(err as Error).message}`, { cause: err });
    }
    const have = d.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('audit_records', 'audit_checkpoints', 'audit_archive_anchors', 'audit_prunes')").pluck().get() as number;
    if (have !== 4) {
      d.close();
      throw new Error(`${file} is not a gatehouse audit database (its audit tables are missing)`);
    }
    return d;
  }
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const d = new Database(file);
    d.pragma('journal_mode = WAL');
    d.pragma('synchronous = FULL');
    d.pragma('busy_timeout = 5000');
    d.exec(SCHEMA);
    d.exec(SQLITE_ARCHIVE_SCHEMA);
    return d;
  } catch (err) {
    // Dies with the reason: the store rejects init() and every call with it.
    throw new Error(`cannot open the audit database ${file}: ${(err as Error).message}`, { cause: err });
  }
}
const db = open();

// The text columns are bound as the batch's UTF-8 bytes (Buffer views, no string made and
// encoded again); CAST makes them TEXT in the database encoding (UTF-8), byte for byte what
// binding the string would have stored. A string bound as such (one with a lone surrogate)
// or NULL passes CAST unchanged.
const ROW = '(CAST(? AS TEXT), ?, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT))';
const insRecord = db.prepare(`INSERT INTO audit_records (stream, seq, time, subject, decision, hash, data) VALUES ${ROW}`);
// Multi-row INSERTs: the per-statement overhead is paid once per ROWS records.
const ROWS = 64;
const insMany = db.prepare(`INSERT INTO audit_records (stream, seq, time, subject, decision, hash, data) VALUES ${Array.from({ length: ROWS }, () => ROW).join(', ')}`);
const args: unknown[] = new Array<unknown>(ROWS * 7);
const one: unknown[] = new Array<unknown>(7);
const insCp = db.prepare('INSERT INTO audit_checkpoints (stream, seq, data, frontier) VALUES (?, ?, ?, ?)');

// The batch being decoded: its UTF-8 text and the read position in it.
let src: Buffer = Buffer.alloc(0);
let pos = 0;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const keyNeedles = new Map<string, [Buffer, Buffer]>();
for (const k of ['stream', 'time', 'subject', 'decision', 'hash']) keyNeedles.set(k, [Buffer.from(`,"${k}":`), Buffer.from(`{"${k}":`)]);

/**
 * The value of top-level member `key` of one record's JSON (`rec`, UTF-8), to bind: a view
 * on its UTF-8 bytes, a string when it holds escapes (a lone surrogate stays one, as when
 * the string itself was bound), null for JSON null. `,"key":` (or `{"key":` first) marks
 * only a key: inside a JSON string every quote is escaped, and records hold no nested
 * objects. Throws on a record without the member or with a value of another type, which
 * fails the whole batch (the records come from the writer: that is a bug, not data).
 */
function member(rec: Buffer, key: string, nearEnd: boolean): Buffer | string | null {
  const [mid, first] = keyNeedles.get(key) as [Buffer, Buffer];
  // The key occurs once, so either direction finds it; searching from the end it is near
  // (in the canonical order: stream, subject, time and hash are, decision is not) scans less.
  const at = nearEnd ? rec.lastIndexOf(mid) : rec.indexOf(mid);
  let v = at + mid.length;
  if (at < 0) {
    if (!rec.subarray(0, first.length).equals(first)) throw new Error(`malformed append payload: a record without ${key}`);
    v = first.length;
  }
  if (rec[v] === 0x6e /* n */ && rec.toString('latin1', v, v + 4) === 'null') return null;
  if (rec[v] !== QUOTE) throw new Error(`malformed append payload: ${key} is not a string`);
  let q = v + 1;
  for (;;) {
    q = rec.indexOf(QUOTE, q);
    if (q < 0) throw new Error(`malformed append payload: ${key} is not a string`);
    // A quote after an odd run of backslashes is part of the string.
    let b = q - 1;
    while (rec[b] === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) break;
    q++;
  }
  const bs = rec.indexOf(BACKSLASH, v + 1);
  if (bs >= 0 && bs < q) return JSON.parse(rec.toString('utf8', v, q + 1)) as string;
  // An empty view may have no data pointer, which SQLite would bind as NULL.
  if (q === v + 1) return '';
  return rec.subarray(v + 1, q);
}

const LEAF_NEEDLE = Buffer.from(',"leaf":"');

/**
 * The `hash` column: a v2 record's leaf (its stored form ends with the `leaf` member, and
 * the seal after it on a batch's last record), a v1 record's hash. `,"leaf":"` marks only
 * the member (quotes inside strings are escaped), and v1 records have none.
 */
function chainColumn(rec: Buffer): Buffer | string | null {
  const at = rec.lastIndexOf(LEAF_NEEDLE);
  if (at < 0) return member(rec, 'hash', true);
  const v = at + LEAF_NEEDLE.length;
  if (rec[v + 64] !== QUOTE) throw new Error('malformed append payload: a leaf that is not 64 hex digits');
  return rec.subarray(v, v + 64);
}

/** Record i of the batch into out[o..o+6], in the INSERT's column order. */
function record(nums: Float64Array, i: number, out: unknown[], o: number): void {
  const n = i * RECORD_NUMS;
  const len = nums[n + 1] as number;
  if (!(len > 0) || pos + len > src.length) throw new Error('malformed append payload');
  const rec = src.subarray(pos, pos + len);
  pos += len;
  out[o] = member(rec, 'stream', true);
  out[o + 1] = nums[n];
  out[o + 2] = member(rec, 'time', true);
  out[o + 3] = member(rec, 'subject', true);
  out[o + 4] = member(rec, 'decision', false);
  out[o + 5] = chainColumn(rec);
  out[o + 6] = rec;
}

const appendTx = db.transaction((b: AppendPayload) => {
  const count = b.count;
  if (!Number.isInteger(count) || count < 0 || count * RECORD_NUMS * 8 > b.nums.byteLength || b.used > b.text.byteLength || b.cps.length % 4 !== 0) throw new Error('malformed append payload');
  const nums = new Float64Array(b.nums, 0, count * RECORD_NUMS);
  src = Buffer.from(b.text, 0, b.used);
  pos = 0;
  try {
    let i = 0;
    for (; i + ROWS <= count; i += ROWS) {
      for (let j = 0; j < ROWS; j++) record(nums, i + j, args, j * 7);
      insMany.run(args);
    }
    for (; i < count; i++) {
      record(nums, i, one, 0);
      insRecord.run(one);
    }
    // Checked before the commit: a batch that does not decode exactly is not stored at all.
    if (pos !== b.used) throw new Error('malformed append payload');
  } finally {
    // The shared buffers go back to the store with the reply: nothing here may keep them.
    src = Buffer.alloc(0);
    args.fill(undefined);
    one.fill(undefined);
  }
  const cps = b.cps;
  for (let k = 0; k < cps.length; k += 4) insCp.run(cps[k], cps[k + 1], cps[k + 2], cps[k + 3]);
});

const headQ = db.prepare('SELECT seq, hash, data FROM audit_records WHERE stream = ? ORDER BY seq DESC, id DESC LIMIT 1');
// A stream whose every record was pruned continues from the latest prune (never a new genesis).
const prunedHeadQ = db.prepare('SELECT seq, hash FROM audit_prunes WHERE stream = ? ORDER BY seq DESC, id DESC LIMIT 1');
const insAnchor = db.prepare('INSERT INTO audit_archive_anchors (stream, seq, data) VALUES (?, ?, ?)');
const anchorsQ = db.prepare('SELECT data FROM audit_archive_anchors WHERE stream = ? ORDER BY seq, id').pluck();
const anchorAtQ = db.prepare('SELECT data FROM audit_archive_anchors WHERE stream = ? AND seq = ? ORDER BY id DESC LIMIT 1').pluck();
const recordAtQ = db.prepare('SELECT hash, data FROM audit_records WHERE stream = ? AND seq = ? ORDER BY id LIMIT 1');

/**
 * The chain value after a stored record: a v1 record's hash; for a v2 record the seal it
 * carries as its batch's last record, '' when it is not one (no chain value ends there).
 */
function chainValue(row: { hash: string; data: string }): string {
  if (!isStoredV2(row.data)) return row.hash;
  return parseStoredV2(row.data)?.seal ?? '';
}
const insPrune = db.prepare('INSERT INTO audit_prunes (stream, seq, hash, time) VALUES (?, ?, ?, ?)');
const delRecords = db.prepare('DELETE FROM audit_records WHERE stream = ? AND seq <= ?');
const delCheckpoints = db.prepare('DELETE FROM audit_checkpoints WHERE stream = ? AND seq < ?');
/** Mirrors the PostgreSQL store's audit_prune function (archive-schema.ts). */
const pruneTx = db.transaction((stream: string, seq: number): number => {
  const a = anchorAtQ.get(stream, seq) as string | undefined;
  if (a === undefined) throw new Error(`no archive anchor for stream ${stream} at seq ${seq}: nothing is pruned that was not archived`);
  const hash = (JSON.parse(a) as { hash: string }).hash;
  const row = recordAtQ.get(stream, seq) as { hash: string; data: string } | undefined;
  if (row !== undefined && chainValue(row) !== hash) throw new Error(`the archive anchor at seq ${seq} does not match the stored record`);
  const last = prunedHeadQ.get(stream) as { seq: number } | undefined;
  if (last !== undefined && last.seq >= seq) return 0;
  insPrune.run(stream, seq, hash, new Date().toISOString());
  const n = delRecords.run(stream, seq).changes;
  delCheckpoints.run(stream, seq);
  return n;
});
const lastCpQ = db.prepare('SELECT data, frontier FROM audit_checkpoints WHERE stream = ? ORDER BY seq DESC, id DESC LIMIT 1');
// The flag: a v2 record (the `leaf` member follows `"v":2`, the last canonical member), whose hash column is its leaf already.
const leavesQ = db.prepare(`SELECT hash, instr(data, ',"v":2,"leaf":"') > 0 FROM audit_records WHERE stream = ? AND seq > ? ORDER BY seq, id`).raw();
// A stream the archive anchors is one that must exist: listed even when its records and
// checkpoints are gone (a wiped store then fails verification instead of showing nothing).
const streamsQ = db.prepare('SELECT DISTINCT stream FROM audit_records UNION SELECT DISTINCT stream FROM audit_checkpoints UNION SELECT DISTINCT stream FROM audit_archive_anchors ORDER BY 1').pluck();
// `+stream` keeps the planner off the (stream, seq) index: through it, every page read
// every row of the stream after afterId and sorted them by id in a temporary B-tree (a
// whole-store verify was quadratic in the stream's length). The rowid range reads the page
// in storage order and stops at the limit; rows of other streams in between are skipped
// (an SQLite file normally holds one instance's stream). raw(): rows as [id, data] arrays,
// not objects (10 000 rows per verifier page).
const rawQ = db.prepare('SELECT id, data FROM audit_records WHERE +stream = ? AND id > ? ORDER BY id LIMIT ?').raw();
const cpsQ = db.prepare('SELECT data FROM audit_checkpoints WHERE stream = ? ORDER BY id').pluck();
/** One prepared statement per combination of query filters (at most 32). */
const queries = new Map<string, Database.Statement>();

function query(q: RecordQuery): PackedStrings {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.stream !== undefined) {
    where.push('stream = ?');
    params.push(q.stream);
  }
  if (q.from !== undefined) {
    where.push('time >= ?');
    params.push(q.from);
  }
  if (q.to !== undefined) {
    where.push('time < ?');
    params.push(q.to);
  }
  if (q.subject !== undefined) {
    where.push('subject = ?');
    params.push(q.subject);
  }
  if (q.decision !== undefined) {
    where.push('decision = ?');
    params.push(q.decision);
  }
  const sql = `SELECT data FROM audit_records ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY time, id LIMIT ?`;
  let st = queries.get(sql);
  if (st === undefined) queries.set(sql, (st = db.prepare(sql).pluck()));
  return packStrings(st.all(...params, q.limit) as string[]);
}

/** Runs one request; returns its result and the buffers to transfer with it. */
function handle(m: Request): [Results[Request['op']], TransferListItem[]] {
  switch (m.op) {
    case 'ping':
      return [null, []];
    case 'append':
      appendTx(m.batch);
      return [null, []];
    case 'head': {
      const rec = headQ.get(m.stream) as { seq: number; hash: string; data: string } | undefined;
      if (rec !== undefined) {
        const hash = chainValue(rec);
        // A v2 stream's last record ends its batch (a batch is one transaction): without a seal the store was altered.
        if (hash === '') throw new Error(`the head record of stream ${m.stream} (seq ${rec.seq}) carries no seal`);
        return [{ seq: rec.seq, hash }, []];
      }
      const pruned = prunedHeadQ.get(m.stream) as { seq: number; hash: string } | undefined;
      return [pruned ? { seq: pruned.seq, hash: pruned.hash } : null, []];
    }
    case 'lastCheckpoint': {
      const row = lastCpQ.get(m.stream) as { data: string; frontier: string } | undefined;
      return [row ? { data: row.data, frontier: row.frontier } : null, []];
    }
    case 'leavesAfter': {
      const rows = leavesQ.all(m.stream, m.after) as Array<[string, number]>;
      const leaves = new Array<string>(rows.length);
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i] as [string, number];
        leaves[i] = r[1] === 1 ? r[0] : leafHex(r[0]);
      }
      const p = packStrings(leaves);
      return [p, [p.lens.buffer]];
    }
    case 'streams':
      return [streamsQ.all() as string[], []];
    case 'readRaw': {
      const rows = rawQ.all(m.stream, m.afterId, m.limit) as Array<[number, string]>;
      const ids = new Float64Array(rows.length);
      const data = new Array<string>(rows.length);
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i] as [number, string];
        ids[i] = r[0];
        data[i] = r[1];
      }
      const p = packStrings(data);
      return [{ text: p.text, lens: p.lens, ids }, [p.lens.buffer, ids.buffer]];
    }
    case 'checkpoints': {
      const p = packStrings(cpsQ.all(m.stream) as string[]);
      return [p, [p.lens.buffer]];
    }
    case 'query': {
      const p = query(m.q);
      return [p, [p.lens.buffer]];
    }
    case 'addAnchor':
      insAnchor.run(m.stream, m.seq, m.data);
      return [null, []];
    case 'anchors': {
      const p = packStrings(anchorsQ.all(m.stream) as string[]);
      return [p, [p.lens.buffer]];
    }
    case 'prune':
      return [pruneTx(m.stream, m.seq), []];
    case 'prunedTo': {
      const last = prunedHeadQ.get(m.stream) as { seq: number } | undefined;
      return [last === undefined ? null : ((anchorAtQ.get(m.stream, last.seq) as string | undefined) ?? null), []];
    }
    case 'close':
      db.close();
      return [null, []];
  }
}

port.on('message', (m: Request) => {
  if (typeof m !== 'object' || m === null || typeof m.id !== 'number') throw new TypeError('audit sqlite worker: a request without an id');
  let reply: Reply;
  let transfer: TransferListItem[] = [];
  try {
    const [value, t] = handle(m);
    reply = { id: m.id, ok: true, value };
    transfer = t;
  } catch (err) {
    const e = err as Error & { code?: unknown };
    // Only the message and SQLite's code cross: no bound values, no stack.
    reply = { id: m.id, ok: false, message: String(e?.message ?? err), code: typeof e?.code === 'string' ? e.code : null };
  }
  port.postMessage(reply, transfer);
});
