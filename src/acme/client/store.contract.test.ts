/** One contract for both ACME stores (files under state.dir, PostgreSQL). */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import postgres from 'postgres';
import { needPostgres, POSTGRES_URL } from '../../testing/services.js';
import { createFileAcmeStore } from './file-store.js';
import { createPostgresAcmeStore } from './postgres-store.js';
import { directoryNamespace, type AcmeStore } from './store.js';

const DIRECTORY = 'https://ca.test/dir';

const impls: Record<string, (t: TestContext) => Promise<{ a: AcmeStore; b: AcmeStore; other: AcmeStore; cleanup(): Promise<void> } | null>> = {
  file: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-acme-store-'));
    return { a: createFileAcmeStore(dir, DIRECTORY), b: createFileAcmeStore(dir, DIRECTORY), other: createFileAcmeStore(dir, 'https://other.test/dir'), cleanup: async () => undefined };
  },
  postgres: async (t) => {
    if (!(await needPostgres(t))) return null;
    const schema = `gh_test_${randomBytes(5).toString('hex')}`;
    const sql = postgres(POSTGRES_URL, { max: 4, onnotice: () => undefined });
    const sql2 = postgres(POSTGRES_URL, { max: 4, onnotice: () => undefined });
    return {
      a: createPostgresAcmeStore(sql, schema, DIRECTORY, false),
      b: createPostgresAcmeStore(sql2, schema, DIRECTORY, false),
      other: createPostgresAcmeStore(sql, schema, 'https://other.test/dir', false),
      async cleanup() {
        await sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`;
        await sql.end();
        await sql2.end();
      },
    };
  },
};

for (const [kind, make] of Object.entries(impls)) {
  describe(`ACME store contract: ${kind}`, () => {
    it('keeps the first account key, certificates per name and directory, and one order lock holder at a time', async (t) => {
      const s = await make(t);
      if (s === null) return;
      const { a, b, other } = s;
      try {
        await a.init();
        await a.init(); // idempotent
        await b.init();
        await other.init();
        assert.equal(await a.loadAccountKey(), null);
        assert.equal(await a.saveAccountKey('KEY-A'), 'KEY-A');
        assert.equal(await b.saveAccountKey('KEY-B'), 'KEY-A', 'the first saved account key stays in force');
        assert.equal(await b.loadAccountKey(), 'KEY-A');
        assert.equal(await other.loadAccountKey(), null, 'another directory has its own account');

        assert.equal(await a.load('app'), null);
        await a.save('app', { chainPem: 'CHAIN-1', keyPem: 'KEY-1' });
        assert.deepEqual(await b.load('app'), { chainPem: 'CHAIN-1', keyPem: 'KEY-1' });
        await b.save('app', { chainPem: 'CHAIN-2', keyPem: 'KEY-2' });
        assert.deepEqual(await a.load('app'), { chainPem: 'CHAIN-2', keyPem: 'KEY-2' });
        assert.equal(await a.load('api'), null);
        assert.equal(await other.load('app'), null);

        let inside = 0;
        const held = a.withOrderLock('app', async () => {
          inside++;
          assert.equal(await b.withOrderLock('app', async () => 'ran'), 'busy', 'a second holder is refused while the first holds it');
          assert.equal(await a.withOrderLock('app', async () => 'ran'), 'busy', 'even in the same process');
          assert.equal(await b.withOrderLock('api', async () => 'other name'), 'other name', 'locks are per name');
          return 'done';
        });
        assert.equal(await held, 'done');
        assert.equal(inside, 1);
        assert.equal(await b.withOrderLock('app', async () => 'after'), 'after', 'released after the holder finished');
        await assert.rejects(a.withOrderLock('app', async () => Promise.reject(new Error('order failed'))), /order failed/);
        assert.equal(await b.withOrderLock('app', async () => 'again'), 'again', 'released after a failure too');

        if (a.shared) {
          await a.publishChallenge('tok', 'tok.thumb');
          assert.equal(await b.lookupChallenge('tok'), 'tok.thumb', 'another instance answers the token');
          await a.withdrawChallenge('tok');
          assert.equal(await b.lookupChallenge('tok'), null);
        } else {
          assert.equal(await b.lookupChallenge('tok'), null);
        }
      } finally {
        await s.cleanup();
      }
    });
  });
}

describe('ACME file store', () => {
  it('keeps keys 0600 in a 0700 directory, one directory per ACME directory URL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-acme-store-'));
    const s = createFileAcmeStore(dir, DIRECTORY);
    await s.init();
    await s.saveAccountKey('K');
    await s.save('app', { chainPem: 'C', keyPem: 'K' });
    const ns = join(dir, 'acme', directoryNamespace(DIRECTORY));
    assert.equal(statSync(join(dir, 'acme')).mode & 0o777, 0o700);
    assert.equal(statSync(ns).mode & 0o777, 0o700);
    assert.equal(statSync(join(ns, 'account.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(ns, 'app.key')).mode & 0o777, 0o600);
  });
});
