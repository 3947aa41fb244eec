/** The embedded identity registry: `identities.db` in state.dir (WAL; the CLI writes, the gateway polls). */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { IdentityExistsError, type IdentityPatch, type IdentityRecord, type IdentityStore } from './types.js';

export function createSqliteIdentityStore(file: string): IdentityStore {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 2000');
  db.exec(`CREATE TABLE IF NOT EXISTS identities (
    subject TEXT PRIMARY KEY,
    type TEXT NOT NULL CHECK (type IN ('agent', 'human')),
    domain TEXT,
    role TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    rpm_limit INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS identity_credentials (
    subject TEXT PRIMARY KEY,
    llm TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS identity_version (id INTEGER PRIMARY KEY CHECK (id = 1), v INTEGER NOT NULL);
  INSERT OR IGNORE INTO identity_version (id, v) VALUES (1, 0);`);
  const bump = db.prepare('UPDATE identity_version SET v = v + 1 WHERE id = 1');
  const getOne = db.prepare<[string], IdentityRecord>('SELECT * FROM identities WHERE subject = ?');
  const all = db.prepare<[], IdentityRecord>('SELECT * FROM identities ORDER BY subject');
  const ins = db.prepare('INSERT INTO identities (subject, type, domain, role, status, rpm_limit, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const upd = db.prepare('UPDATE identities SET domain = ?, role = ?, status = ?, rpm_limit = ?, updated_at = ? WHERE subject = ?');
  const del = db.prepare('DELETE FROM identities WHERE subject = ?');
  const ver = db.prepare<[], { v: number }>('SELECT v FROM identity_version WHERE id = 1');
  const putCred = db.prepare('INSERT INTO identity_credentials (subject, llm, updated_at) VALUES (?, ?, ?) ON CONFLICT (subject) DO UPDATE SET llm = excluded.llm, updated_at = excluded.updated_at');
  const delCred = db.prepare('DELETE FROM identity_credentials WHERE subject = ?');
  const allCreds = db.prepare<[], { subject: string; llm: string }>('SELECT subject, llm FROM identity_credentials');

  const add = db.transaction((r: Omit<IdentityRecord, 'created_at' | 'updated_at'>, t: number) => {
    if (getOne.get(r.subject)) throw new IdentityExistsError(`identity ${r.subject} exists`);
    ins.run(r.subject, r.type, r.domain, r.role, r.status, r.rpm_limit, t, t);
    bump.run();
  });
  const update = db.transaction((subject: string, p: IdentityPatch, t: number) => {
    const cur = getOne.get(subject);
    if (!cur) return null;
    upd.run(p.domain !== undefined ? p.domain : cur.domain, p.role !== undefined ? p.role : cur.role, p.status ?? cur.status, p.rpm_limit !== undefined ? p.rpm_limit : cur.rpm_limit, t, subject);
    bump.run();
    return getOne.get(subject) ?? null;
  });
  const setCredential = db.transaction((subject: string, stored: string | null, t: number) => {
    if (!getOne.get(subject)) return false;
    if (stored === null) delCred.run(subject);
    else putCred.run(subject, stored, t);
    bump.run();
    return true;
  });
  const remove = db.transaction((subject: string) => {
    delCred.run(subject);
    const n = del.run(subject).changes;
    if (n > 0) bump.run();
    return n > 0;
  });

  return {
    kind: 'sqlite',
    async init() {},
    async list() {
      return all.all();
    },
    async get(subject) {
      return getOne.get(subject) ?? null;
    },
    async add(r, t) {
      add(r, t);
      return getOne.get(r.subject) as IdentityRecord;
    },
    async update(subject, p, t) {
      return update(subject, p, t);
    },
    async remove(subject) {
      return remove(subject);
    },
    async setCredential(subject, stored, t) {
      return setCredential(subject, stored, t);
    },
    async credentials() {
      return new Map(allCreds.all().map((r) => [r.subject, r.llm]));
    },
    async version() {
      return ver.get()?.v ?? 0;
    },
    async close() {
      db.close();
    },
  };
}
