/** One contract for both ACME stores (SQLite and PostgreSQL) and both nonce stores (SQLite and Redis). */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { needPostgres, needRedis, POSTGRES_URL, REDIS_URL } from '../../../testing/services.js';
import { createPostgresAcmeStore } from './postgres.js';
import { createRedisNonceStore } from './redis-nonces.js';
import { createSqliteAcmeStore, createSqliteNonceStore, openAcmeDatabase } from './sqlite.js';
import type { AccountRecord, AcmeStore, AuthzRecord, NonceStore, OrderRecord } from './types.js';

type Made<T> = { store: T; cleanup(): Promise<void> } | null;

const stores: Record<string, (t: TestContext) => Promise<Made<AcmeStore>>> = {
  sqlite: async () => {
    const db = openAcmeDatabase(join(mkdtempSync(join(tmpdir(), 'gatehouse-acme-store-')), 'acme.db'));
    return { store: createSqliteAcmeStore(db), cleanup: async () => void db.close() };
  },
  postgres: async (t) => {
    if (!(await needPostgres(t))) return null;
    const schema = `gh_acme_${randomBytes(5).toString('hex')}`;
    const sql = postgres(POSTGRES_URL, { max: 3, onnotice: () => undefined });
    return {
      store: createPostgresAcmeStore(sql, schema),
      async cleanup() {
        await sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`;
        await sql.end();
      },
    };
  },
};

const nonceStores: Record<string, (t: TestContext) => Promise<Made<NonceStore>>> = {
  sqlite: async () => {
    const db = openAcmeDatabase(join(mkdtempSync(join(tmpdir(), 'gatehouse-acme-nonce-')), 'acme.db'));
    return { store: createSqliteNonceStore(db), cleanup: async () => void db.close() };
  },
  redis: async (t) => {
    if (!(await needRedis(t))) return null;
    const client = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
    return { store: createRedisNonceStore(client, `gh-test-${randomBytes(4).toString('hex')}:`), cleanup: async () => void client.disconnect() };
  },
};

const account = (id: string, tp: string): AccountRecord => ({ id, status: 'valid', jwk: { kty: 'EC', crv: 'P-256', x: id, y: id }, thumbprint: tp, contact: [], eab_kid: null, created_at: 1 });
const authz = (id: string, acct: string, value: string, expires: number): AuthzRecord => ({ id, account_id: acct, identifier: { type: 'dns', value }, status: 'pending', expires, challenges: [{ type: 'http-01', token: `t-${id}`, status: 'pending', validated: null, error: null }] });
const order = (id: string, acct: string, authzIds: string[], created: number): OrderRecord => ({ id, account_id: acct, status: 'pending', expires: 10_000, identifiers: [{ type: 'dns', value: 'a.test' }], authz_ids: authzIds, not_after: null, cert_serial: null, error: null, created_at: created });

for (const [name, make] of Object.entries(stores)) {
  describe(`ACME store contract: ${name}`, () => {
    it('accounts: one per key, update, key rollover with compare-and-set', async (t) => {
      const b = await make(t);
      if (b === null) return;
      const s = b.store;
      try {
        await s.init();
        await s.init();
        assert.deepEqual(await s.createAccount(account('a1', 'tp1')), { account: account('a1', 'tp1'), created: true });
        const dup = await s.createAccount(account('a2', 'tp1'));
        assert.equal(dup.created, false);
        assert.equal(dup.account.id, 'a1', 'the existing account for that key');
        assert.equal((await s.accountByThumbprint('tp1'))?.id, 'a1');
        assert.equal(await s.account('nope'), null);
        assert.deepEqual((await s.updateAccount('a1', { contact: ['mailto:x@y.z'] }))?.contact, ['mailto:x@y.z']);
        assert.equal((await s.updateAccount('a1', { status: 'deactivated' }))?.status, 'deactivated');
        assert.deepEqual((await s.account('a1'))?.contact, ['mailto:x@y.z'], 'untouched fields stay');
        assert.equal(await s.updateAccount('nope', { status: 'deactivated' }), null);
        await s.createAccount(account('b1', 'tpB'));
        assert.equal(await s.changeKey('a1', 'tp1', { kty: 'EC' }, 'tpB'), 'key_in_use');
        assert.equal(await s.changeKey('a1', 'wrong', { kty: 'EC' }, 'tp2'), 'changed');
        assert.equal(await s.changeKey('a1', 'tp1', { kty: 'EC', crv: 'P-384' }, 'tp2'), 'ok');
        assert.equal((await s.accountByThumbprint('tp2'))?.id, 'a1');
        assert.equal(await s.accountByThumbprint('tp1'), null);
        assert.equal(await s.changeKey('a1', 'tp1', { kty: 'EC' }, 'tp3'), 'changed', 'a second rollover from the old key loses');
      } finally {
        await b.cleanup();
      }
    });

    it('orders and authorizations: compare-and-set on status, counts, reuse lookup', async (t) => {
      const b = await make(t);
      if (b === null) return;
      const s = b.store;
      try {
        await s.init();
        await s.createOrder(order('o1', 'acc', ['z1', 'z2'], 100), [authz('z1', 'acc', 'a.test', 5000), authz('z2', 'acc', 'b.test', 5000)]);
        await s.createOrder(order('o2', 'acc', ['z1'], 200), []);
        assert.deepEqual((await s.ordersOf('acc', 10)).map((o) => o.id), ['o2', 'o1'], 'newest first');
        assert.equal(await s.countOpenOrders('acc', 1000), 2);
        assert.equal(await s.countOpenOrders('acc', 20_000), 0, 'expired orders do not count');
        assert.equal(await s.countPendingAuthzs('acc', 1000), 2);
        const o1 = (await s.order('o1')) as OrderRecord;
        assert.equal(await s.updateOrder({ ...o1, status: 'ready' }, 'pending'), true);
        assert.equal(await s.updateOrder({ ...o1, status: 'processing' }, 'pending'), false, 'the status moved: the second writer loses');
        assert.equal(await s.updateOrder({ ...o1, status: 'processing' }, 'ready'), true);
        assert.equal(await s.countOpenOrders('acc', 1000), 2);
        assert.equal(await s.updateOrder({ ...o1, status: 'valid', cert_serial: 'AB' }, 'processing'), true);
        assert.equal((await s.order('o1'))?.cert_serial, 'AB');
        assert.equal(await s.countOpenOrders('acc', 1000), 1);
        const z1 = (await s.authz('z1')) as AuthzRecord;
        assert.equal(await s.validAuthzFor('acc', { type: 'dns', value: 'a.test' }, 1000), null);
        assert.equal(await s.updateAuthz({ ...z1, status: 'valid', expires: 9000 }, 'pending'), true);
        assert.equal(await s.updateAuthz({ ...z1, status: 'invalid' }, 'pending'), false);
        assert.equal((await s.validAuthzFor('acc', { type: 'dns', value: 'a.test' }, 1000))?.id, 'z1');
        assert.equal(await s.validAuthzFor('other', { type: 'dns', value: 'a.test' }, 1000), null, 'never another account\'s');
        assert.equal(await s.validAuthzFor('acc', { type: 'dns', value: 'a.test' }, 9000), null, 'not once expired');
        assert.equal(await s.countPendingAuthzs('acc', 1000), 1);
      } finally {
        await b.cleanup();
      }
    });

    it('certificates: stored, revoked once, listed for the CRL until they expire', async (t) => {
      const b = await make(t);
      if (b === null) return;
      const s = b.store;
      try {
        await s.init();
        const cert = { serial: '0A1B', account_id: 'acc', order_id: 'o1', chain_pem: 'PEM', spki_sha256: 'h', not_after: 5000, revoked_at: null, revocation_reason: null };
        await s.putCertificate(cert);
        await s.putCertificate({ ...cert, serial: '0C', not_after: 50_000 });
        assert.deepEqual(await s.certificate('0A1B'), cert);
        assert.equal(await s.certificate('FF'), null);
        assert.deepEqual(await s.revokedCertificates(1000), []);
        assert.equal(await s.revokeCertificate('0A1B', 1500, 4), true);
        assert.equal(await s.revokeCertificate('0A1B', 1600, 1), false, 'already revoked');
        assert.equal(await s.revokeCertificate('FF', 1600, 1), false);
        assert.equal(await s.revokeCertificate('0C', 1700, 0), true);
        assert.deepEqual(await s.revokedCertificates(1000), [
          { serial: '0A1B', revoked_at: 1500, revocation_reason: 4 },
          { serial: '0C', revoked_at: 1700, revocation_reason: 0 },
        ]);
        assert.deepEqual((await s.revokedCertificates(6000)).map((r) => r.serial), ['0C'], 'expired certificates leave the CRL');
      } finally {
        await b.cleanup();
      }
    });
  });
}

for (const [name, make] of Object.entries(nonceStores)) {
  describe(`ACME nonce store contract: ${name}`, () => {
    it('a nonce is accepted exactly once, never unknown or expired ones, even under concurrent use', async (t) => {
      const b = await make(t);
      if (b === null) return;
      const s = b.store;
      try {
        const now = Date.now();
        await s.add('n1', now + 60_000);
        assert.equal(await s.consume('n1', now), true);
        assert.equal(await s.consume('n1', now), false, 'replayed');
        assert.equal(await s.consume('never-issued', now), false);
        await s.add('n2', now + 60_000);
        const results = await Promise.all(Array.from({ length: 10 }, () => s.consume('n2', now)));
        assert.equal(results.filter(Boolean).length, 1, 'one winner among concurrent uses');
        await s.add('short', Date.now() + 50);
        await new Promise((ok) => setTimeout(ok, 120));
        assert.equal(await s.consume('short', Date.now()), false, 'expired');
      } finally {
        await b.cleanup();
      }
    });
  });
}
