/**
 * The audit archive end to end: a real gateway in front of a real upstream archives its
 * stream to an S3-compatible server the test starts (src/testing/s3-server.ts), prunes
 * what is archived and read back, keeps serving while the bucket is down (records stay
 * local, the failure is a metric and a log event) and catches up when it is back; the
 * `gatehouse` CLI verifies the archive alone and with the local store.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { auditFiles } from '../audit/test-files.js';
import { archiveBlock, metric, s3Credentials as credentials, until } from '../testing/archive.js';
import { startTestS3 } from '../testing/s3-server.js';
import { baseConfig, BIN, request, startGateway, startUpstream } from '../testing/harness.js';

const run = promisify(execFile);

describe('audit archive (gateway, S3-compatible server)', () => {
  it('archives while serving, prunes what is archived, survives the bucket going away, and the archive verifies alone and with the store', { timeout: 240_000 }, async () => {
    const up = await startUpstream();
    const s3 = await startTestS3();
    const files = auditFiles();
    const c = credentials(files, s3);
    const gw = await startGateway(
      baseConfig(up.url, {}, {
        state: { dir: files.stateDir },
        audit: files.block({ checkpoint_records: 20, checkpoint_interval: '500ms', archive: archiveBlock(s3, c, { keep_local: '0s' }) }),
      }),
    );
    try {
      for (let i = 0; i < 50; i++) assert.equal((await request(`${gw.url}/a/${i}`)).status, 200);
      await until('two segments archived', async () => (await metric(gw.adminUrl, 'gatehouse_audit_archive_segments_total')) >= 2);
      await until('pruned', async () => (await metric(gw.adminUrl, 'gatehouse_audit_archive_pruned_records_total')) > 0);
      assert.equal(await metric(gw.adminUrl, 'gatehouse_audit_archive_up'), 1);

      // The bucket goes away: every request is still served at once; records stay local.
      await s3.stop();
      const down = await metric(gw.adminUrl, 'gatehouse_audit_archive_failures_total');
      for (let i = 0; i < 30; i++) assert.equal((await request(`${gw.url}/b/${i}`)).status, 200);
      await until('a failed archive run', async () => (await metric(gw.adminUrl, 'gatehouse_audit_archive_failures_total')) > down);
      assert.equal(await metric(gw.adminUrl, 'gatehouse_audit_archive_up'), 0);
      assert.ok(gw.logs.some((l) => l.event === 'audit_archive_unavailable' && l.level === 'warn' && l.reason === 'unreachable'));
      assert.ok(!gw.logs.some((l) => JSON.stringify(l).includes(s3.secretAccessKey)), 'the secret key is never logged');

      await s3.start();
      await until('recovered', () => gw.logs.some((l) => l.event === 'audit_archive_recovered' && l.level === 'info'));
      const seq = gw.gw.audit?.writer.status().head_seq ?? 0;
      await until('the records written during the outage archived', () => (gw.gw.audit?.archiver?.archived?.seq ?? 0) >= seq - 25);
    } finally {
      await gw.close();
    }
    try {
      // After a clean stop: the store (pruned) verifies from its anchor; the archive alone
      // verifies with only the public key and the bucket's read credentials…
      const local = await run(process.execPath, [BIN, 'audit', 'verify', '--config', gw.file]);
      assert.match(local.stdout, /OK: 1 stream\(s\) verified/);
      const alone = await run(process.execPath, [BIN, 'audit', 'verify', '--archive', `s3://${s3.bucket}/gatehouse/`, '--endpoint', s3.endpoint, '--access-key-id-file', c.id, '--secret-access-key-file', c.secret, '--public-key', files.publicKey]);
      assert.match(alone.stdout, /archive stream gw-[0-9a-f]+: \d+ segment\(s\), \d+ records, .*MACs not checked \(no keyring\): OK/);
      assert.match(alone.stdout, /OK: 1 archived stream\(s\) verified/);
      // With the config (its S3 settings, keyring and store): a prefix that holds nothing is a
      // failure, not an empty success — the store says what was archived.
      const empty = await run(process.execPath, [BIN, 'audit', 'verify', '--archive', `s3://${s3.bucket}/elsewhere/`, '--config', gw.file]).catch((e: { code: number; stdout: string }) => e);
      assert.equal((empty as { code: number }).code, 1);
      assert.match((empty as { stdout: string }).stdout, /segment 0: segment_missing/);
    } finally {
      await up.close();
      await s3.close();
      rmSync(files.dir, { recursive: true, force: true });
    }
  });
});
