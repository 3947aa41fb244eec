/** One contract for both identity registries (SQLite and PostgreSQL), and the in-memory view over them. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import postgres from 'postgres';
import { needPostgres, POSTGRES_URL } from '../../testing/services.js';
import { createPostgresIdentityStore } from './postgres.js';
import { createSqliteIdentityStore } from './sqlite.js';
import { credentialKeyring } from '../../identity/credential-crypto.js';
import { IdentityExistsError, type IdentityStore } from './types.js';
import { createIdentityView } from './view.js';

const impls: Record<string, (t: TestContext) => Promise<{ store: IdentityStore; cleanup(): Promise<void> } | null>> = {
  sqlite: async () => {
    const store = createSqliteIdentityStore(join(mkdtempSync(join(tmpdir(), 'gatehouse-id-')), 'identities.db'));
    return { store, cleanup: () => store.close() };
  },
  postgres: async (t) => {
    if (!(await needPostgres(t))) return null;
    const schema = `gh_test_${randomBytes(5).toString('hex')}`;
    const sql = postgres(POSTGRES_URL, { max: 2, onnotice: () => undefined });
    const store = createPostgresIdentityStore(sql, schema);
    return {
      store,
      async cleanup() {
        const admin = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
        await admin`DROP SCHEMA IF EXISTS ${admin(schema)} CASCADE`;
        await admin.end();
        await store.close();
      },
    };
  },
};

for (const [name, make] of Object.entries(impls)) {
  describe(`identity store contract: ${name}`, () => {
    it('adds, lists, gets, updates, removes, and moves its version on every write', async (t) => {
      const b = await make(t);
      if (b === null) return;
      const s = b.store;
      try {
        await s.init();
        await s.init(); // idempotent
        const v0 = await s.version();
        const a = await s.add({ subject: 'agent-1', type: 'agent', domain: 'billing', role: null, status: 'active', rpm_limit: 30 }, 1000);
        assert.deepEqual(a, { subject: 'agent-1', type: 'agent', domain: 'billing', role: null, status: 'active', rpm_limit: 30, created_at: 1000, updated_at: 1000 });
        await assert.rejects(s.add({ subject: 'agent-1', type: 'agent', domain: null, role: null, status: 'active', rpm_limit: null }, 1), IdentityExistsError);
        await s.add({ subject: 'alice', type: 'human', domain: null, role: 'admin', status: 'active', rpm_limit: null }, 2000);
        const v1 = await s.version();
        assert.notEqual(v1, v0);
        assert.deepEqual((await s.list()).map((r) => r.subject), ['agent-1', 'alice']);
        const sus = await s.update('agent-1', { status: 'suspended' }, 3000);
        assert.equal(sus?.status, 'suspended');
        assert.equal(sus?.rpm_limit, 30, 'untouched fields stay');
        assert.equal(sus?.updated_at, 3000);
        assert.equal((await s.update('agent-1', { rpm_limit: null }, 4000))?.rpm_limit, null);
        assert.equal(await s.update('nobody', { status: 'active' }, 1), null);
        assert.notEqual(await s.version(), v1);
        assert.equal(await s.remove('alice'), true);
        assert.equal(await s.remove('alice'), false);
        assert.equal(await s.get('alice'), null);
        assert.equal((await s.get('agent-1'))?.domain, 'billing');
      } finally {
        await b.cleanup();
      }
    });

    it('keeps an encrypted credential per identity: set, replace, clear, gone with the identity, seen by the view', async (t) => {
      const b = await make(t);
      if (b === null) return;
      const s = b.store;
      try {
        await s.init();
        await s.add({ subject: 'agent-c', type: 'agent', domain: null, role: null, status: 'active', rpm_limit: null }, 1);
        const ring = credentialKeyring(new Map([['k1', randomBytes(32)]]), 'k1');
        const v0 = await s.version();
        assert.equal(await s.setCredential('nobody', ring.encrypt('nobody', 'x'), 2), false);
        assert.equal(await s.setCredential('agent-c', ring.encrypt('agent-c', 'sk-one'), 2), true);
        assert.notEqual(await s.version(), v0, 'a credential change moves the version (views refresh)');
        const stored = (await s.credentials()).get('agent-c') as string;
        assert.doesNotMatch(stored, /sk-one/, 'stored encrypted');
        assert.equal(ring.decrypt('agent-c', stored), 'sk-one');
        assert.throws(() => ring.decrypt('agent-d', stored), /does not decrypt/, 'bound to its subject');
        assert.equal(await s.setCredential('agent-c', ring.encrypt('agent-c', 'sk-two'), 3), true);
        assert.equal(ring.decrypt('agent-c', (await s.credentials()).get('agent-c') as string), 'sk-two');
        const view = createIdentityView(s, { refreshMs: 60_000, maxStalenessMs: 60_000 });
        await view.start();
        assert.equal(ring.decrypt('agent-c', view.credential('agent-c') as string), 'sk-two');
        view.close();
        assert.equal(await s.setCredential('agent-c', null, 4), true);
        assert.equal((await s.credentials()).size, 0);
        await s.setCredential('agent-c', ring.encrypt('agent-c', 'sk-three'), 5);
        assert.deepEqual((await s.get('agent-c'))?.subject, 'agent-c', 'records do not carry the credential');
        assert.equal('llm' in ((await s.get('agent-c')) as object), false);
        await s.remove('agent-c');
        assert.equal((await s.credentials()).size, 0, 'removed with the identity');
      } finally {
        await b.cleanup();
      }
    });

    it('the view follows the store and says when it cannot vouch for itself', async (t) => {
      const b = await make(t);
      if (b === null) return;
      try {
        await b.store.init();
        const view = createIdentityView(b.store, { refreshMs: 30, maxStalenessMs: 2000 });
        await view.start();
        assert.equal(view.current(Date.now()), true);
        assert.equal(view.get('agent-9'), undefined);
        await b.store.add({ subject: 'agent-9', type: 'agent', domain: null, role: null, status: 'active', rpm_limit: null }, 1);
        view.nudge();
        const end = Date.now() + 5000;
        while (view.get('agent-9') === undefined) {
          if (Date.now() > end) assert.fail('view did not pick up the new identity');
          await new Promise((r) => setTimeout(r, 10));
        }
        await b.store.update('agent-9', { status: 'suspended' }, 2);
        while (view.get('agent-9')?.status !== 'suspended') {
          if (Date.now() > end) assert.fail('view did not pick up the suspension by polling');
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.equal(view.current(Date.now() + 60_000), false);
        view.close();
      } finally {
        await b.cleanup();
      }
    });
  });
}
