/**
 * One contract for both archive targets (a directory, and an S3-compatible server the
 * test starts: s3rver behind a front that checks signatures, src/testing/s3-server.ts):
 * write-once keys, exact read-back, listing, and the refusal of public storage.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { startTestS3 } from '../../testing/s3-server.js';
import { createDirectoryTarget } from './directory-target.js';
import { createS3Target, policyAllowsAnonymousRead } from './s3-target.js';
import { s3TargetFor } from './test-archive.js';
import { ArchiveTargetError, type ArchiveTarget } from './target.js';

interface Made {
  target: ArchiveTarget;
  /** Makes the storage readable by anyone (as an operator's mistake would). */
  makePublic(): Promise<void>;
  cleanup(): Promise<void>;
}

const targets: Record<string, (t: TestContext) => Promise<Made>> = {
  directory: async () => {
    const root = mkdtempSync(join(tmpdir(), 'gatehouse-archive-'));
    const dir = join(root, 'archive');
    const target = createDirectoryTarget(dir);
    return {
      target,
      async makePublic() {
        chmodSync(dir, 0o755);
      },
      async cleanup() {
        rmSync(root, { recursive: true, force: true });
      },
    };
  },
  s3: async () => {
    const s3 = await startTestS3();
    const target = s3TargetFor(s3);
    return {
      target,
      async makePublic() {
        s3.publicAccess = 'anonymous';
      },
      async cleanup() {
        await target.close();
        await s3.close();
      },
    };
  },
};

for (const [name, make] of Object.entries(targets)) {
  describe(`archive target contract: ${name}`, () => {
    it('write-once: a key is written once; the same bytes again are "exists", other bytes a "conflict" that changes nothing', async (t) => {
      const m = await make(t);
      try {
        await m.target.check();
        const key = `${m.target.prefix}s1/000000000000.manifest.json`;
        assert.equal(await m.target.putOnce(key, Buffer.from('one')), 'written');
        assert.equal(await m.target.putOnce(key, Buffer.from('one')), 'exists');
        assert.equal(await m.target.putOnce(key, Buffer.from('two')), 'conflict');
        assert.deepEqual(await m.target.get(key), Buffer.from('one'));
        assert.deepEqual(await m.target.head(key), { bytes: 3 });
      } finally {
        await m.cleanup();
      }
    });

    it('reads back exactly the bytes written (binary, empty); absent keys are null', async (t) => {
      const m = await make(t);
      try {
        const bin = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff));
        const p = m.target.prefix;
        assert.equal(await m.target.putOnce(`${p}s1/a.bin`, bin), 'written');
        assert.equal(await m.target.putOnce(`${p}s1/empty`, Buffer.alloc(0)), 'written');
        assert.deepEqual(await m.target.get(`${p}s1/a.bin`), bin);
        assert.deepEqual(await m.target.get(`${p}s1/empty`), Buffer.alloc(0));
        assert.equal(await m.target.get(`${p}s1/nope`), null);
        assert.equal(await m.target.head(`${p}s1/nope`), null);
      } finally {
        await m.cleanup();
      }
    });

    it('lists keys under a prefix in order, and the streams (folders) under the prefix', async (t) => {
      const m = await make(t);
      try {
        const p = m.target.prefix;
        for (const k of ['s2/000000000001.x', 's1/000000000002.x', 's1/000000000001.x', 's1/000000000010.x']) await m.target.putOnce(`${p}${k}`, Buffer.from(k));
        assert.deepEqual(await m.target.list(`${p}s1/`), [`${p}s1/000000000001.x`, `${p}s1/000000000002.x`, `${p}s1/000000000010.x`]);
        assert.deepEqual(await m.target.folders(p), ['s1', 's2']);
        assert.deepEqual(await m.target.list(`${p}s3/`), []);
      } finally {
        await m.cleanup();
      }
    });

    it('refuses keys that are not plain relative paths', async (t) => {
      const m = await make(t);
      try {
        for (const k of ['../x', '/abs', 'a//b', 'a/./b', '']) await assert.rejects(m.target.putOnce(k, Buffer.from('x')), TypeError);
      } finally {
        await m.cleanup();
      }
    });

    it('a public bucket (directory readable by others) is refused by check() and by the probe after a write', async (t) => {
      const m = await make(t);
      try {
        await m.target.check();
        const key = `${m.target.prefix}s1/000000000000.manifest.json`;
        await m.target.putOnce(key, Buffer.from('x'));
        await m.target.probeAnonymous(key);
        await m.makePublic();
        await assert.rejects(m.target.check(), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'public');
        await assert.rejects(m.target.probeAnonymous(key), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'public');
      } finally {
        await m.cleanup();
      }
    });
  });
}

describe('S3 target specifics', () => {
  it('requests are signed with the credentials from the secret files: a wrong secret is refused (denied), never sent unsigned', async () => {
    const s3 = await startTestS3();
    const bad = createS3Target({ bucket: s3.bucket, prefix: '', region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, accessKeyId: s3.accessKeyId, secretAccessKey: 'wrong', requestTimeoutMs: 5000 });
    try {
      await assert.rejects(bad.putOnce('x/y', Buffer.from('z')), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'denied' && !err.message.includes('wrong'));
    } finally {
      await bad.close();
      await s3.close();
    }
  });

  it('a bucket whose policy lets anyone read is refused (the policy check, without an anonymous probe answering)', async () => {
    const s3 = await startTestS3({ publicAccess: 'policy' });
    const target = s3TargetFor(s3);
    try {
      await assert.rejects(target.check(), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'public' && /policy allows anyone s3:GetObject/.test(err.message));
    } finally {
      await target.close();
      await s3.close();
    }
  });

  it('a bucket that answers anonymous GETs is refused (the probe, as `mc anonymous get` would show)', async () => {
    const s3 = await startTestS3({ publicAccess: 'anonymous' });
    const target = s3TargetFor(s3);
    try {
      await assert.rejects(target.check(), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'public');
    } finally {
      await target.close();
      await s3.close();
    }
  });

  it('least-privilege credentials (policy, ACL and lock calls refused) still pass a private bucket, and the anonymous probe still refuses a public one', async () => {
    const s3 = await startTestS3({ denyInspection: true });
    const target = s3TargetFor(s3);
    try {
      assert.deepEqual(await target.check(), { objectLock: null });
      s3.publicAccess = 'anonymous';
      await assert.rejects(target.check(), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'public' && /unauthenticated GET/.test(err.message));
    } finally {
      await target.close();
      await s3.close();
    }
  });

  it('Object Lock: detected, and each object carries the retention it was written with', async () => {
    const s3 = await startTestS3({ objectLock: true });
    const target = s3TargetFor(s3);
    try {
      const c = await target.check();
      assert.deepEqual(c.objectLock, { mode: 'COMPLIANCE' });
      const until = new Date(Date.now() + 86_400_000);
      assert.equal(await target.putOnce('gw/s/a', Buffer.from('a'), { retainUntil: until, lockMode: 'COMPLIANCE' }), 'written');
      const lock = s3.locks.get('gw/s/a');
      assert.equal(lock?.mode, 'COMPLIANCE');
      assert.equal(Date.parse(lock?.retainUntil ?? ''), until.getTime());
    } finally {
      await target.close();
      await s3.close();
    }
  });

  it('a bucket without Object Lock reports none', async () => {
    const s3 = await startTestS3();
    const target = s3TargetFor(s3);
    try {
      assert.equal((await target.check()).objectLock, null);
    } finally {
      await target.close();
      await s3.close();
    }
  });

  it('an unreachable endpoint is "unreachable" (retried later), not an error that stops archiving', async () => {
    const s3 = await startTestS3();
    const target = s3TargetFor(s3);
    try {
      await s3.stop();
      await assert.rejects(target.check(), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'unreachable');
      await assert.rejects(target.putOnce('gw/s/a', Buffer.from('a')), (err: unknown) => err instanceof ArchiveTargetError && err.reason === 'unreachable');
      await s3.start();
      assert.equal(await target.putOnce('gw/s/a', Buffer.from('a')), 'written');
    } finally {
      await target.close();
      await s3.close();
    }
  });

  it('policy statements: only unconditional Allow to everyone for reads counts as public', () => {
    const pol = (st: unknown) => JSON.stringify({ Statement: st });
    assert.match(policyAllowsAnonymousRead(pol([{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject' }])) ?? '', /s3:GetObject/);
    assert.match(policyAllowsAnonymousRead(pol({ Effect: 'Allow', Principal: { AWS: '*' }, Action: ['s3:ListBucket'] })) ?? '', /ListBucket/);
    assert.match(policyAllowsAnonymousRead(pol([{ Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:*'] }])) ?? '', /s3:\*/);
    assert.equal(policyAllowsAnonymousRead(pol([{ Effect: 'Allow', Principal: { AWS: ['arn:aws:iam::1:root'] }, Action: ['s3:GetObject'] }])), null);
    assert.equal(policyAllowsAnonymousRead(pol([{ Effect: 'Deny', Principal: '*', Action: ['s3:GetObject'] }])), null);
    assert.equal(policyAllowsAnonymousRead(pol([{ Effect: 'Allow', Principal: '*', Action: ['s3:PutObject'] }])), null);
    assert.equal(policyAllowsAnonymousRead(pol([{ Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } } }])), null);
    assert.equal(policyAllowsAnonymousRead('not json'), null);
  });
});
