/**
 * One contract for both revocation stores (SQLite and Redis). Every case uses two store
 * instances on the same backing data — a writer and a reader, as the CLI/admin API and a
 * gateway are — so a key-layout mismatch between writing and reading cannot pass.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { closeSharedRedis, deleteByPrefix, sharedRedis } from '../rate-limit/test-support.js';
import { createRedisClient } from '../rate-limit/redis-client.js';
import { needRedis, REDIS_URL } from '../../testing/services.js';
import { sha256Hex } from '../../stages/token/verifier.js';
import { createRedisRevocationStore } from './redis.js';
import { createSqliteRevocationStore } from './sqlite.js';
import type { RevocationEntry, RevocationStore } from './types.js';

interface Backing {
  /** A new store instance on the same backing data. */
  open(): RevocationStore;
  cleanup(): Promise<void>;
}

const HOUR = 3_600_000;

async function eventually(f: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const impls: Record<string, (t: TestContext) => Promise<Backing | null>> = {
  sqlite: async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'gatehouse-rev-')), 'revocations.db');
    return { open: () => createSqliteRevocationStore({ file, maxStalenessMs: 5000, pollIntervalMs: 50 }), cleanup: async () => {} };
  },
  redis: async (t) => {
    if (!(await needRedis(t))) return null;
    const prefix = `gatehouse-test:rev:${randomBytes(6).toString('hex')}:`;
    const clients: Array<ReturnType<typeof createRedisClient>> = [];
    return {
      open: () => {
        const client = createRedisClient({ url: REDIS_URL, commandTimeoutMs: 10_000 });
        clients.push(client);
        return createRedisRevocationStore({ client, subscriber: { url: REDIS_URL }, prefix, maxStalenessMs: 5000, pollIntervalMs: 200 });
      },
      cleanup: async () => {
        for (const c of clients) c.disconnect();
        await deleteByPrefix(await sharedRedis(), prefix);
      },
    };
  },
};

after(() => closeSharedRedis());

for (const [name, make] of Object.entries(impls)) {
  describe(`revocation store contract: ${name}`, () => {
    const withStores = async (t: TestContext, f: (w: RevocationStore, r: RevocationStore, b: Backing) => Promise<void>) => {
      const b = await make(t);
      if (b === null) return;
      const w = b.open();
      const r = b.open();
      try {
        await w.start();
        await r.start();
        await f(w, r, b);
      } finally {
        await w.close();
        await r.close();
        await b.cleanup();
      }
    };

    it('a jti revoked by one instance is revoked on another (same key layout), and only that jti', async (t) => {
      await withStores(t, async (w, r) => {
        const now = Date.now();
        assert.equal(r.current(now), true);
        const jti = sha256Hex('token-1');
        await w.add({ kind: 'jti', key: jti, before: 0, expiresAt: now + HOUR, createdAt: now });
        assert.equal(w.revoked(jti, 'agent-1', 1, now), true, 'the writer applies its own revocation at once');
        await eventually(() => r.revoked(jti, 'agent-1', 1, Date.now()), 'reader sees the revocation');
        assert.equal(r.revoked(sha256Hex('token-2'), 'agent-1', 1, Date.now()), false);
        assert.equal(r.revoked(null, 'agent-1', 1, Date.now()), false);
      });
    });

    it('a subject cut-off revokes tokens issued at or before it (and tokens without iat), not later ones', async (t) => {
      await withStores(t, async (w, r) => {
        const now = Date.now();
        const before = now - 10_000;
        await w.add({ kind: 'subject', key: 'agent-x', before, expiresAt: now + HOUR, createdAt: now });
        await eventually(() => r.revoked(null, 'agent-x', null, Date.now()), 'reader sees the cut-off');
        const iatBefore = Math.floor(before / 1000) - 5;
        const iatAfter = Math.floor(before / 1000) + 5;
        assert.equal(r.revoked(null, 'agent-x', iatBefore, Date.now()), true);
        assert.equal(r.revoked(sha256Hex('j'), 'agent-x', iatAfter, Date.now()), false);
        assert.equal(r.revoked(null, 'agent-y', iatBefore, Date.now()), false, 'other subjects untouched');
        // A later cut-off wins over an earlier one.
        await w.add({ kind: 'subject', key: 'agent-x', before: now, expiresAt: now + HOUR, createdAt: now });
        await eventually(() => r.revoked(null, 'agent-x', iatAfter, Date.now()), 'later cut-off applies');
        await w.add({ kind: 'subject', key: 'agent-x', before, expiresAt: now + HOUR, createdAt: now });
        assert.equal(w.revoked(null, 'agent-x', iatAfter, Date.now()), true, 'an earlier cut-off never undoes a later one');
      });
    });

    it('an entry lives exactly until its expiry', async (t) => {
      await withStores(t, async (w, r) => {
        const now = Date.now();
        const e: RevocationEntry = { kind: 'jti', key: sha256Hex('short'), before: 0, expiresAt: now + 60_000, createdAt: now };
        await w.add(e);
        await eventually(() => r.list(Date.now()).some((x) => x.key === e.key), 'listed');
        assert.equal(r.revoked(e.key, 's', 1, now + 59_999), true);
        assert.equal(r.revoked(e.key, 's', 1, now + 60_000), false);
        assert.equal(r.list(now + 60_001).some((x) => x.key === e.key), false);
      });
    });

    it('revocations survive a restart of every instance', async (t) => {
      await withStores(t, async (w, _r, b) => {
        const now = Date.now();
        const key = sha256Hex('persist');
        await w.add({ kind: 'jti', key, before: 0, expiresAt: now + HOUR, createdAt: now });
        await w.add({ kind: 'subject', key: 'agent-p', before: now, expiresAt: now + HOUR, createdAt: now });
        const fresh = b.open();
        try {
          await fresh.start();
          assert.equal(fresh.revoked(key, 's', 1, Date.now()), true);
          assert.equal(fresh.revoked(null, 'agent-p', Math.floor(now / 1000) - 1, Date.now()), true);
          assert.equal(fresh.list(Date.now()).length, 2);
        } finally {
          await fresh.close();
        }
      });
    });

    it('is not current when it could not confirm its set for longer than max_staleness', async (t) => {
      await withStores(t, async (_w, r) => {
        const now = Date.now();
        assert.equal(r.current(now), true);
        assert.equal(r.current(now + 60_000), false);
      });
    });
  });
}
