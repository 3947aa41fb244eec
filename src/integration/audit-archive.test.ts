/**
 * The audit archive end to end: a real gateway in front of a real upstream archives its
 * stream to an S3-compatible server the test starts (src/testing/s3-server.ts), prunes
 * what is archived and read back, keeps serving while the bucket is down (records stay
 * local, the failure is a metric and a log event) and catches up when it is back; the
 * `gatehouse` CLI verifies the archive alone and with the local store; a public bucket is
 * refused by `gatehouse check` and by the gateway's start.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { auditFiles, type AuditFiles } from '../audit/test-files.js';
import { startTestS3, type TestS3 } from '../testing/s3-server.js';
import { baseConfig, BIN, request, sleep, startGateway, startUpstream, writeConfig } from '../testing/harness.js';

const run = promisify(execFile);

function credentials(files: AuditFiles, s3: TestS3): { id: string; secret: string } {
  const id = join(files.dir, 's3-id');
  const secret = join(files.dir, 's3-secret');
  writeFileSync(id, s3.accessKeyId + '\n', { mode: 0o600 });
  writeFileSync(secret, s3.secretAccessKey + '\n', { mode: 0o600 });
  return { id, secret };
}

function archiveBlock(s3: TestS3, c: { id: string; secret: string }, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    s3: { bucket: s3.bucket, prefix: 'gatehouse/', endpoint: s3.endpoint, access_key_id_file: c.id, secret_access_key_file: c.secret, request_timeout: '2s' },
    interval: '1s',
    segment_records: 20,
    retry_max: '1s',
    ...extra,
  };
}

async function metric(adminUrl: string, name: string): Promise<number> {
  const r = await request(`${adminUrl}/metrics`);
  let sum = 0;
  for (const line of r.body.split('\n')) if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum += Number(line.split(' ').pop());
  return sum;
}

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

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

  it('a public bucket: `gatehouse check` reports it as an error and the gateway does not start', { timeout: 240_000 }, async () => {
    const up = await startUpstream();
    const s3 = await startTestS3({ publicAccess: 'anonymous' });
    const files = auditFiles();
    const c = credentials(files, s3);
    const config = baseConfig(up.url, {}, { state: { dir: files.stateDir }, audit: files.block({ archive: archiveBlock(s3, c) }) });
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-archive-check-'));
    try {
      const file = writeConfig(config, dir);
      const r = await run(process.execPath, [BIN, 'check', '--config', file]).catch((e: { code: number; stderr: string }) => e);
      assert.equal((r as { code: number }).code, 1);
      // (The test server reports a public policy status too, as AWS does; without it the probe decides.)
      assert.match((r as { stderr: string }).stderr, /audit\.archive\.s3: s3:\/\/audit\/gatehouse\/: (the bucket policy status is public|an unauthenticated GET)/);
      await assert.rejects(startGateway(config), /audit archive: s3:\/\/audit\/gatehouse\/: (the bucket policy status is public|an unauthenticated GET)/);
      // Private again: check passes (with the warning that the bucket has no Object Lock).
      s3.publicAccess = 'no';
      const ok = await run(process.execPath, [BIN, 'check', '--config', file]);
      assert.match(ok.stdout, /ok/);
      assert.match(ok.stderr, /audit\.archive\.object_lock: .*has no Object Lock/);
    } finally {
      await up.close();
      await s3.close();
      rmSync(files.dir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('directory archive + `gatehouse audit prune`: prunes only what a verified archive holds; a damaged archive prunes nothing', { timeout: 240_000 }, async () => {
    const up = await startUpstream();
    const files = auditFiles();
    const archiveDir = join(files.dir, 'archive');
    const block = (extra: Record<string, unknown>) => files.block({ checkpoint_records: 10, archive: { directory: archiveDir, interval: '1s', segment_records: 10, ...extra } });
    const gw = await startGateway(baseConfig(up.url, {}, { state: { dir: files.stateDir }, audit: block({}) }));
    try {
      for (let i = 0; i < 35; i++) assert.equal((await request(`${gw.url}/d/${i}`)).status, 200);
      await until('three segments archived', () => (gw.gw.audit?.archiver?.archived?.segment.index ?? -1) >= 2);
    } finally {
      await gw.close();
    }
    try {
      // Without keep_local the gateway never prunes, and neither does the command.
      const none = await run(process.execPath, [BIN, 'audit', 'prune', '--config', gw.file]).catch((e: { code: number; stderr: string }) => e);
      assert.equal((none as { code: number }).code, 1);
      assert.match((none as { stderr: string }).stderr, /keep_local is not set/);
      const file = writeConfig(baseConfig(up.url, {}, { state: { dir: files.stateDir }, audit: block({ keep_local: '0s' }) }), mkdtempSync(join(files.dir, 'cfg-')));
      const dry = await run(process.execPath, [BIN, 'audit', 'prune', '--config', file, '--dry-run']);
      assert.match(dry.stdout, /would prune seqs 1\.\.\d+ \(archived in segments 0\.\.\d+, verified\)/);
      // A segment goes missing from the archive: nothing is pruned.
      const { readdirSync, renameSync } = await import('node:fs');
      const streamDir = join(archiveDir, readdirSync(archiveDir)[0] as string);
      const m1 = join(streamDir, '000000000001.manifest.json');
      renameSync(m1, `${m1}.away`);
      const refused = await run(process.execPath, [BIN, 'audit', 'prune', '--config', file]).catch((e: { code: number; stdout: string }) => e);
      assert.equal((refused as { code: number }).code, 1);
      assert.match((refused as { stdout: string }).stdout, /segment 1: segment_missing[\s\S]*NOT pruned: the archive does not verify/);
      renameSync(`${m1}.away`, m1);
      const done = await run(process.execPath, [BIN, 'audit', 'prune', '--config', file]);
      assert.match(done.stdout, /pruned \d+ record\(s\) through seq \d+/);
      const archive = await run(process.execPath, [BIN, 'audit', 'verify', '--archive', archiveDir, '--public-key', files.publicKey]);
      assert.match(archive.stdout, /OK: 1 archived stream\(s\) verified/);
    } finally {
      await up.close();
      rmSync(files.dir, { recursive: true, force: true });
    }
  });

  it('config: archive needs a checkpoint key, one target, credential files with safe modes, and https off loopback', async () => {
    const files = auditFiles();
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-archive-cfg-'));
    try {
      const loose = join(files.dir, 'loose');
      writeFileSync(loose, 'AKIA\n', { mode: 0o644 });
      const block = files.block({
        checkpoint_key_file: undefined,
        archive: { directory: join(dir, 'a'), s3: { bucket: 'audit', endpoint: 'http://minio.internal:9000', access_key_id_file: loose, secret_access_key_file: join(files.dir, 'missing') } },
      });
      const file = writeConfig(baseConfig('http://127.0.0.1:1', {}, { state: { dir: files.stateDir }, audit: block }), dir);
      const r = await run(process.execPath, [BIN, 'check', '--config', file]).catch((e: { code: number; stderr: string }) => e);
      const err = (r as { stderr: string }).stderr;
      assert.equal((r as { code: number }).code, 1);
      assert.match(err, /audit\.archive: set exactly one of audit\.archive\.directory and audit\.archive\.s3/);
      assert.match(err, /audit\.archive: archiving needs audit\.checkpoint_key_file/);
      assert.match(err, /audit\.archive\.s3\.access_key_id_file: secret file .* has mode 0644/);
      assert.match(err, /audit\.archive\.s3\.secret_access_key_file: cannot read secret file/);
      assert.match(err, /audit\.archive\.s3\.endpoint: plain http is only accepted to a loopback address/);
    } finally {
      rmSync(files.dir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
