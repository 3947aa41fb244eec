/**
 * The distributed ACME store: PostgreSQL (state.postgres) for accounts, orders,
 * authorizations and certificates, so several instances behind one name serve one
 * client. Same shape as the SQLite store: JSON documents beside the columns that
 * queries and compare-and-set need.
 */
import type { Sql } from '../../../stores/postgres-client.js';
import type { AccountRecord, AcmeStore, AuthzRecord, CertificateRecord, KeyChangeResult, OrderRecord } from './types.js';

const identKey = (i: { type: string; value: string }) => `${i.type}:${i.value}`;
type Doc = { doc: string };

export function createPostgresAcmeStore(sql: Sql, schema: string, opts: { closeSql?: boolean } = {}): AcmeStore {
  const s = sql(schema);
  const one = <T>(rows: readonly Doc[]): T | null => (rows[0] ? (JSON.parse(rows[0].doc) as T) : null);
  return {
    kind: 'postgres',
    async init() {
      await sql`CREATE SCHEMA IF NOT EXISTS ${s}`;
      await sql`CREATE TABLE IF NOT EXISTS ${s}.acme_accounts (id text PRIMARY KEY, thumbprint text NOT NULL UNIQUE, doc text NOT NULL)`;
      await sql`CREATE TABLE IF NOT EXISTS ${s}.acme_orders (id text PRIMARY KEY, account_id text NOT NULL, status text NOT NULL, expires bigint NOT NULL, created_at bigint NOT NULL, doc text NOT NULL)`;
      await sql`CREATE INDEX IF NOT EXISTS acme_orders_account ON ${s}.acme_orders (account_id, created_at)`;
      await sql`CREATE TABLE IF NOT EXISTS ${s}.acme_authzs (id text PRIMARY KEY, account_id text NOT NULL, ident text NOT NULL, status text NOT NULL, expires bigint NOT NULL, doc text NOT NULL)`;
      await sql`CREATE INDEX IF NOT EXISTS acme_authzs_account ON ${s}.acme_authzs (account_id, ident)`;
      await sql`CREATE TABLE IF NOT EXISTS ${s}.acme_certificates (serial text PRIMARY KEY, not_after bigint NOT NULL, revoked_at bigint, doc text NOT NULL)`;
    },
    async createAccount(a) {
      const ins = await sql`INSERT INTO ${s}.acme_accounts (id, thumbprint, doc) VALUES (${a.id}, ${a.thumbprint}, ${JSON.stringify(a)}) ON CONFLICT (thumbprint) DO NOTHING RETURNING id`;
      if (ins.length === 1) return { account: a, created: true };
      return { account: one<AccountRecord>(await sql<Doc[]>`SELECT doc FROM ${s}.acme_accounts WHERE thumbprint = ${a.thumbprint}`) as AccountRecord, created: false };
    },
    async account(id) {
      return one<AccountRecord>(await sql<Doc[]>`SELECT doc FROM ${s}.acme_accounts WHERE id = ${id}`);
    },
    async accountByThumbprint(tp) {
      return one<AccountRecord>(await sql<Doc[]>`SELECT doc FROM ${s}.acme_accounts WHERE thumbprint = ${tp}`);
    },
    async updateAccount(id, patch) {
      return sql.begin(async (tx) => {
        const cur = one<AccountRecord>(await tx<Doc[]>`SELECT doc FROM ${s}.acme_accounts WHERE id = ${id} FOR UPDATE`);
        if (!cur) return null;
        const next: AccountRecord = { ...cur, ...(patch.contact ? { contact: patch.contact } : {}), ...(patch.status ? { status: patch.status } : {}) };
        await tx`UPDATE ${s}.acme_accounts SET doc = ${JSON.stringify(next)} WHERE id = ${id}`;
        return next;
      }) as Promise<AccountRecord | null>;
    },
    async changeKey(id, oldTp, jwk, tp) {
      return sql.begin(async (tx) => {
        const cur = one<AccountRecord>(await tx<Doc[]>`SELECT doc FROM ${s}.acme_accounts WHERE id = ${id} FOR UPDATE`);
        if (!cur || cur.thumbprint !== oldTp) return 'changed';
        const taken = await tx`SELECT 1 FROM ${s}.acme_accounts WHERE thumbprint = ${tp}`;
        if (taken.length > 0) return 'key_in_use';
        try {
          await tx`UPDATE ${s}.acme_accounts SET thumbprint = ${tp}, doc = ${JSON.stringify({ ...cur, jwk, thumbprint: tp })} WHERE id = ${id}`;
        } catch (err) {
          // Another instance took the key between our check and the update (unique violation).
          if ((err as { code?: string }).code === '23505') return 'key_in_use';
          throw err;
        }
        return 'ok';
      }) as Promise<KeyChangeResult>;
    },
    async createOrder(o, authzs) {
      await sql.begin(async (tx) => {
        for (const a of authzs) await tx`INSERT INTO ${s}.acme_authzs (id, account_id, ident, status, expires, doc) VALUES (${a.id}, ${a.account_id}, ${identKey(a.identifier)}, ${a.status}, ${a.expires}, ${JSON.stringify(a)})`;
        await tx`INSERT INTO ${s}.acme_orders (id, account_id, status, expires, created_at, doc) VALUES (${o.id}, ${o.account_id}, ${o.status}, ${o.expires}, ${o.created_at}, ${JSON.stringify(o)})`;
      });
    },
    async order(id) {
      return one<OrderRecord>(await sql<Doc[]>`SELECT doc FROM ${s}.acme_orders WHERE id = ${id}`);
    },
    async ordersOf(accountId, limit) {
      return (await sql<Doc[]>`SELECT doc FROM ${s}.acme_orders WHERE account_id = ${accountId} ORDER BY created_at DESC, id LIMIT ${limit}`).map((r) => JSON.parse(r.doc) as OrderRecord);
    },
    async updateOrder(next, expect) {
      const r = await sql`UPDATE ${s}.acme_orders SET status = ${next.status}, doc = ${JSON.stringify(next)} WHERE id = ${next.id} AND status = ${expect}`;
      return r.count === 1;
    },
    async countOpenOrders(accountId, now) {
      const r = await sql<Array<{ n: string }>>`SELECT count(*) AS n FROM ${s}.acme_orders WHERE account_id = ${accountId} AND status IN ('pending', 'ready', 'processing') AND expires > ${now}`;
      return Number(r[0]?.n ?? 0);
    },
    async authz(id) {
      return one<AuthzRecord>(await sql<Doc[]>`SELECT doc FROM ${s}.acme_authzs WHERE id = ${id}`);
    },
    async updateAuthz(next, expect) {
      const r = await sql`UPDATE ${s}.acme_authzs SET status = ${next.status}, expires = ${next.expires}, doc = ${JSON.stringify(next)} WHERE id = ${next.id} AND status = ${expect}`;
      return r.count === 1;
    },
    async validAuthzFor(accountId, identifier, now) {
      return one<AuthzRecord>(await sql<Doc[]>`SELECT doc FROM ${s}.acme_authzs WHERE account_id = ${accountId} AND ident = ${identKey(identifier)} AND status = 'valid' AND expires > ${now} ORDER BY expires DESC LIMIT 1`);
    },
    async countPendingAuthzs(accountId, now) {
      const r = await sql<Array<{ n: string }>>`SELECT count(*) AS n FROM ${s}.acme_authzs WHERE account_id = ${accountId} AND status = 'pending' AND expires > ${now}`;
      return Number(r[0]?.n ?? 0);
    },
    async putCertificate(c) {
      await sql`INSERT INTO ${s}.acme_certificates (serial, not_after, revoked_at, doc) VALUES (${c.serial}, ${c.not_after}, ${c.revoked_at}, ${JSON.stringify(c)})`;
    },
    async certificate(serial) {
      return one<CertificateRecord>(await sql<Doc[]>`SELECT doc FROM ${s}.acme_certificates WHERE serial = ${serial}`);
    },
    async revokeCertificate(serial, at, reason) {
      return sql.begin(async (tx) => {
        const cur = one<CertificateRecord>(await tx<Doc[]>`SELECT doc FROM ${s}.acme_certificates WHERE serial = ${serial} FOR UPDATE`);
        if (!cur || cur.revoked_at !== null) return false;
        await tx`UPDATE ${s}.acme_certificates SET revoked_at = ${at}, doc = ${JSON.stringify({ ...cur, revoked_at: at, revocation_reason: reason })} WHERE serial = ${serial}`;
        return true;
      }) as Promise<boolean>;
    },
    async revokedCertificates(now) {
      return (await sql<Doc[]>`SELECT doc FROM ${s}.acme_certificates WHERE revoked_at IS NOT NULL AND not_after > ${now} ORDER BY serial`).map((r) => {
        const c = JSON.parse(r.doc) as CertificateRecord;
        return { serial: c.serial, revoked_at: c.revoked_at, revocation_reason: c.revocation_reason };
      });
    },
    async close() {
      if (opts.closeSql) await sql.end({ timeout: 5 });
    },
  };
}
