/**
 * The embedded revocation store: an append-only log in SQLite under `state.dir`
 * (`revocations.db`, WAL mode so the CLI can write while the gateway reads), loaded into
 * memory at start. Other processes sharing the file (`gatehouse token revoke`) are seen
 * by polling for rows past the last sequence number every `revocation.poll_interval`;
 * the instance counts as current while those polls succeed within `max_staleness`.
 * Expired rows are deleted as they pass, so the file holds only live revocations.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { RevocationSet } from './set.js';
import type { RevocationEntry, RevocationStore } from './types.js';

export interface SqliteRevocationStoreOptions {
  readonly file: string;
  readonly maxStalenessMs: number;
  readonly pollIntervalMs: number;
  readonly now?: () => number;
}

interface Row {
  seq: number;
  kind: 'jti' | 'subject';
  key: string;
  before_ms: number;
  expires_at: number;
  created_at: number;
}

export function createSqliteRevocationStore(opts: SqliteRevocationStoreOptions): RevocationStore {
  const now = opts.now ?? Date.now;
  mkdirSync(dirname(opts.file), { recursive: true, mode: 0o700 });
  const db = new Database(opts.file);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 2000');
  db.exec(`CREATE TABLE IF NOT EXISTS revocations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('jti', 'subject')),
    key TEXT NOT NULL,
    before_ms INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  )`);
  const insert = db.prepare('INSERT INTO revocations (kind, key, before_ms, expires_at, created_at) VALUES (?, ?, ?, ?, ?)');
  const since = db.prepare<[number, number, number], Row>('SELECT * FROM revocations WHERE seq > ? AND seq <= ? AND expires_at > ? ORDER BY seq');
  const maxSeq = db.prepare<[], { s: number | null }>('SELECT max(seq) AS s FROM revocations');
  const prune = db.prepare('DELETE FROM revocations WHERE expires_at <= ?');
  const set = new RevocationSet();
  let lastSeq = 0;
  let confirmedAt = -Infinity;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  function poll(): void {
    const t = now();
    // Read up to a fixed upper bound, then advance to it: a row inserted meanwhile has a
    // higher seq and is read next time (AUTOINCREMENT never reuses or goes back).
    const m = maxSeq.get()?.s ?? 0;
    if (m > lastSeq) {
      for (const r of since.all(lastSeq, m, t)) set.apply({ kind: r.kind, key: r.key, before: r.before_ms, expiresAt: r.expires_at, createdAt: r.created_at });
      lastSeq = m;
    }
    confirmedAt = t;
  }

  function safePoll(): void {
    try {
      poll();
    } catch {
      // The set stays as it is; current() turns false after max_staleness.
    }
  }

  return {
    kind: 'sqlite',
    async start() {
      safePoll();
      try {
        prune.run(now());
      } catch {
        // A read-only or busy file: pruning can wait.
      }
      timer = setInterval(safePoll, opts.pollIntervalMs);
      timer.unref();
    },
    async add(e: RevocationEntry) {
      if (closed) throw new Error('revocation store closed');
      insert.run(e.kind, e.key, e.before, e.expiresAt, e.createdAt);
      set.apply(e);
      try {
        prune.run(now());
      } catch {
        // Best effort.
      }
    },
    list: (t) => set.list(t),
    revoked: (j, s, iat, t) => set.revoked(j, s, iat, t),
    current: (t) => t - confirmedAt <= opts.maxStalenessMs,
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      db.close();
    },
  };
}
