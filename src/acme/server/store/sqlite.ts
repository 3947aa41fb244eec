/**
 * The embedded ACME store: `acme.db` in state.dir (WAL). Objects are kept as JSON with
 * the columns queries and compare-and-set need beside them; nonces in the same file.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { AccountRecord, AcmeStore, AuthzRecord, CertificateRecord, NonceStore, OrderRecord } from './types.js';

export function openAcmeDatabase(file: string): Database.Database {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 2000');
  db.exec(`CREATE TABLE IF NOT EXISTS acme_accounts (id TEXT PRIMARY KEY, thumbprint TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS acme_orders (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, status TEXT NOT NULL, expires INTEGER NOT NULL, created_at INTEGER NOT NULL, doc TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS acme_orders_account ON acme_orders (account_id, created_at);
  CREATE TABLE IF NOT EXISTS acme_authzs (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, ident TEXT NOT NULL, status TEXT NOT NULL, expires INTEGER NOT NULL, doc TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS acme_authzs_account ON acme_authzs (account_id, ident);
  CREATE TABLE IF NOT EXISTS acme_certificates (serial TEXT PRIMARY KEY, not_after INTEGER NOT NULL, revoked_at INTEGER, doc TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS acme_nonces (nonce TEXT PRIMARY KEY, expires INTEGER NOT NULL);`);
  return db;
}

const identKey = (i: { type: string; value: string }) => `${i.type}:${i.value}`;

export function createSqliteAcmeStore(db: Database.Database): AcmeStore {
  const q = {
    insAccount: db.prepare('INSERT INTO acme_accounts (id, thumbprint, doc) VALUES (?, ?, ?) ON CONFLICT (thumbprint) DO NOTHING'),
    account: db.prepare<[string], { doc: string }>('SELECT doc FROM acme_accounts WHERE id = ?'),
    accountTp: db.prepare<[string], { doc: string }>('SELECT doc FROM acme_accounts WHERE thumbprint = ?'),
    updAccount: db.prepare('UPDATE acme_accounts SET doc = ? WHERE id = ?'),
    changeKey: db.prepare('UPDATE acme_accounts SET thumbprint = ?, doc = ? WHERE id = ? AND thumbprint = ?'),
    insOrder: db.prepare('INSERT INTO acme_orders (id, account_id, status, expires, created_at, doc) VALUES (?, ?, ?, ?, ?, ?)'),
    order: db.prepare<[string], { doc: string }>('SELECT doc FROM acme_orders WHERE id = ?'),
    ordersOf: db.prepare<[string, number], { doc: string }>('SELECT doc FROM acme_orders WHERE account_id = ? ORDER BY created_at DESC, id LIMIT ?'),
    updOrder: db.prepare('UPDATE acme_orders SET status = ?, doc = ? WHERE id = ? AND status = ?'),
    countOrders: db.prepare<[string, number], { n: number }>("SELECT count(*) AS n FROM acme_orders WHERE account_id = ? AND status IN ('pending', 'ready', 'processing') AND expires > ?"),
    insAuthz: db.prepare('INSERT INTO acme_authzs (id, account_id, ident, status, expires, doc) VALUES (?, ?, ?, ?, ?, ?)'),
    authz: db.prepare<[string], { doc: string }>('SELECT doc FROM acme_authzs WHERE id = ?'),
    updAuthz: db.prepare('UPDATE acme_authzs SET status = ?, expires = ?, doc = ? WHERE id = ? AND status = ?'),
    validAuthz: db.prepare<[string, string, number], { doc: string }>("SELECT doc FROM acme_authzs WHERE account_id = ? AND ident = ? AND status = 'valid' AND expires > ? ORDER BY expires DESC LIMIT 1"),
    countAuthz: db.prepare<[string, number], { n: number }>("SELECT count(*) AS n FROM acme_authzs WHERE account_id = ? AND status = 'pending' AND expires > ?"),
    insCert: db.prepare('INSERT INTO acme_certificates (serial, not_after, revoked_at, doc) VALUES (?, ?, ?, ?)'),
    cert: db.prepare<[string], { doc: string }>('SELECT doc FROM acme_certificates WHERE serial = ?'),
    revoke: db.prepare('UPDATE acme_certificates SET revoked_at = ?, doc = ? WHERE serial = ? AND revoked_at IS NULL'),
    revoked: db.prepare<[number], { doc: string }>('SELECT doc FROM acme_certificates WHERE revoked_at IS NOT NULL AND not_after > ? ORDER BY serial'),
  };
  const parse = <T>(row: { doc: string } | undefined): T | null => (row ? (JSON.parse(row.doc) as T) : null);
  const createOrder = db.transaction((o: OrderRecord, authzs: readonly AuthzRecord[]) => {
    for (const a of authzs) q.insAuthz.run(a.id, a.account_id, identKey(a.identifier), a.status, a.expires, JSON.stringify(a));
    q.insOrder.run(o.id, o.account_id, o.status, o.expires, o.created_at, JSON.stringify(o));
  });
  const changeKey = db.transaction((id: string, oldTp: string, jwk: Record<string, unknown>, tp: string) => {
    if (q.accountTp.get(tp)) return 'key_in_use' as const;
    const cur = parse<AccountRecord>(q.account.get(id));
    if (!cur || cur.thumbprint !== oldTp) return 'changed' as const;
    return q.changeKey.run(tp, JSON.stringify({ ...cur, jwk, thumbprint: tp }), id, oldTp).changes === 1 ? ('ok' as const) : ('changed' as const);
  });
  const revoke = db.transaction((serial: string, at: number, reason: number) => {
    const cur = parse<CertificateRecord>(q.cert.get(serial));
    if (!cur || cur.revoked_at !== null) return false;
    return q.revoke.run(at, JSON.stringify({ ...cur, revoked_at: at, revocation_reason: reason }), serial).changes === 1;
  });
  return {
    kind: 'sqlite',
    async init() {},
    async createAccount(a) {
      const created = q.insAccount.run(a.id, a.thumbprint, JSON.stringify(a)).changes === 1;
      return { account: created ? a : (parse<AccountRecord>(q.accountTp.get(a.thumbprint)) as AccountRecord), created };
    },
    async account(id) {
      return parse<AccountRecord>(q.account.get(id));
    },
    async accountByThumbprint(tp) {
      return parse<AccountRecord>(q.accountTp.get(tp));
    },
    async updateAccount(id, patch) {
      const cur = parse<AccountRecord>(q.account.get(id));
      if (!cur) return null;
      const next: AccountRecord = { ...cur, ...(patch.contact ? { contact: patch.contact } : {}), ...(patch.status ? { status: patch.status } : {}) };
      q.updAccount.run(JSON.stringify(next), id);
      return next;
    },
    async changeKey(id, oldTp, jwk, tp) {
      return changeKey(id, oldTp, jwk, tp);
    },
    async createOrder(o, authzs) {
      createOrder(o, authzs);
    },
    async order(id) {
      return parse<OrderRecord>(q.order.get(id));
    },
    async ordersOf(accountId, limit) {
      return q.ordersOf.all(accountId, limit).map((r) => JSON.parse(r.doc) as OrderRecord);
    },
    async updateOrder(next, expect) {
      return q.updOrder.run(next.status, JSON.stringify(next), next.id, expect).changes === 1;
    },
    async countOpenOrders(accountId, now) {
      return q.countOrders.get(accountId, now)?.n ?? 0;
    },
    async authz(id) {
      return parse<AuthzRecord>(q.authz.get(id));
    },
    async updateAuthz(next, expect) {
      return q.updAuthz.run(next.status, next.expires, JSON.stringify(next), next.id, expect).changes === 1;
    },
    async validAuthzFor(accountId, identifier, now) {
      return parse<AuthzRecord>(q.validAuthz.get(accountId, identKey(identifier), now));
    },
    async countPendingAuthzs(accountId, now) {
      return q.countAuthz.get(accountId, now)?.n ?? 0;
    },
    async putCertificate(c) {
      q.insCert.run(c.serial, c.not_after, c.revoked_at, JSON.stringify(c));
    },
    async certificate(serial) {
      return parse<CertificateRecord>(q.cert.get(serial));
    },
    async revokeCertificate(serial, at, reason) {
      return revoke(serial, at, reason);
    },
    async revokedCertificates(now) {
      return q.revoked.all(now).map((r) => {
        const c = JSON.parse(r.doc) as CertificateRecord;
        return { serial: c.serial, revoked_at: c.revoked_at, revocation_reason: c.revocation_reason };
      });
    },
    async close() {},
  };
}

export function createSqliteNonceStore(db: Database.Database): NonceStore {
  const ins = db.prepare('INSERT INTO acme_nonces (nonce, expires) VALUES (?, ?)');
  const del = db.prepare('DELETE FROM acme_nonces WHERE nonce = ? AND expires > ?');
  const sweep = db.prepare('DELETE FROM acme_nonces WHERE expires <= ?');
  let adds = 0;
  return {
    kind: 'sqlite',
    async add(nonce, expiresAt) {
      ins.run(nonce, expiresAt);
      // Expired nonces are swept now and then, so the table stays as small as the live set.
      if (++adds % 256 === 0) sweep.run(Date.now());
    },
    async consume(nonce, now) {
      // One statement: the delete is the check, so two requests with one nonce cannot both pass.
      return del.run(nonce, now).changes === 1;
    },
    async close() {},
  };
}
